//! Label colours and the provider side of a label: one palette of names that maps to what each
//! provider accepts (Gmail's fixed list of label colours, Outlook's `preset0`…`preset24`).
//!
//! A label's colour is a palette name or any `#rrggbb`; a custom colour reaches the providers as
//! the palette colour nearest to it, since neither takes arbitrary colours.

/// A label as a provider holds it: Gmail's label (`Label_N`, name), Outlook's master category
/// (id, `displayName`; messages carry the `displayName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderLabel {
    pub id: String,
    pub name: String,
}

/// What a provider gets for a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelColor {
    /// The palette name.
    pub name: &'static str,
    /// Gmail `color.backgroundColor` and `color.textColor` (both from Gmail's allowed list).
    pub gmail_background: &'static str,
    pub gmail_text: &'static str,
    /// Outlook `outlookCategory.color`.
    pub outlook_preset: &'static str,
}

const fn c(
    name: &'static str,
    outlook_preset: &'static str,
    gmail_background: &'static str,
    gmail_text: &'static str,
) -> LabelColor {
    LabelColor {
        name,
        gmail_background,
        gmail_text,
        outlook_preset,
    }
}

/// The palette, in Outlook's preset order (the names are Outlook's colour names).
pub const PALETTE: [LabelColor; 25] = [
    c("red", "preset0", "#fb4c2f", "#ffffff"),
    c("orange", "preset1", "#ffad47", "#000000"),
    c("brown", "preset2", "#a46a21", "#ffffff"),
    c("yellow", "preset3", "#fad165", "#000000"),
    c("green", "preset4", "#16a766", "#ffffff"),
    c("teal", "preset5", "#2da2bb", "#ffffff"),
    c("olive", "preset6", "#aa8831", "#ffffff"),
    c("blue", "preset7", "#4a86e8", "#ffffff"),
    c("purple", "preset8", "#a479e2", "#ffffff"),
    c("cranberry", "preset9", "#b65775", "#ffffff"),
    c("steel", "preset10", "#b6cff5", "#0d3472"),
    c("darkSteel", "preset11", "#0d3472", "#b6cff5"),
    c("gray", "preset12", "#cccccc", "#000000"),
    c("darkGray", "preset13", "#666666", "#ffffff"),
    c("black", "preset14", "#000000", "#ffffff"),
    c("darkRed", "preset15", "#ac2b16", "#ffffff"),
    c("darkOrange", "preset16", "#cf8933", "#ffffff"),
    c("darkBrown", "preset17", "#7a4706", "#ffffff"),
    c("darkYellow", "preset18", "#d5ae49", "#000000"),
    c("darkGreen", "preset19", "#0b804b", "#ffffff"),
    c("darkTeal", "preset20", "#0d3b44", "#98d7e4"),
    c("darkOlive", "preset21", "#594c05", "#fbe983"),
    c("darkBlue", "preset22", "#1c4587", "#ffffff"),
    c("darkPurple", "preset23", "#41236d", "#ffffff"),
    c("darkCranberry", "preset24", "#83334c", "#ffffff"),
];

/// The colours Gmail accepts for `color.backgroundColor` and `color.textColor` (discovery
/// document, `LabelColor`); anything else answers 400.
pub const GMAIL_COLORS: [&str; 102] = [
    "#000000", "#434343", "#666666", "#999999", "#cccccc", "#efefef", "#f3f3f3", "#ffffff",
    "#fb4c2f", "#ffad47", "#fad165", "#16a766", "#43d692", "#4a86e8", "#a479e2", "#f691b3",
    "#f6c5be", "#ffe6c7", "#fef1d1", "#b9e4d0", "#c6f3de", "#c9daf8", "#e4d7f5", "#fcdee8",
    "#efa093", "#ffd6a2", "#fce8b3", "#89d3b2", "#a0eac9", "#a4c2f4", "#d0bcf1", "#fbc8d9",
    "#e66550", "#ffbc6b", "#fcda83", "#44b984", "#68dfa9", "#6d9eeb", "#b694e8", "#f7a7c0",
    "#cc3a21", "#eaa041", "#f2c960", "#149e60", "#3dc789", "#3c78d8", "#8e63ce", "#e07798",
    "#ac2b16", "#cf8933", "#d5ae49", "#0b804b", "#2a9c68", "#285bac", "#653e9b", "#b65775",
    "#822111", "#a46a21", "#aa8831", "#076239", "#1a764d", "#1c4587", "#41236d", "#83334c",
    "#464646", "#e7e7e7", "#0d3472", "#b6cff5", "#0d3b44", "#98d7e4", "#3d188e", "#e3d7ff",
    "#711a36", "#fbd3e0", "#8a1c0a", "#f2b2a8", "#7a2e0b", "#ffc8af", "#7a4706", "#ffdeb5",
    "#594c05", "#fbe983", "#684e07", "#fdedc1", "#0b4f30", "#b3efd3", "#04502e", "#a2dcc1",
    "#c2c2c2", "#4986e7", "#2da2bb", "#b99aff", "#994a64", "#f691b2", "#ff7537", "#ffad46",
    "#662e37", "#ebdbde", "#cca6ac", "#094228", "#42d692", "#16a765",
];

/// Outlook's category colours: `none` and `preset0`…`preset24`.
pub fn is_outlook_preset(value: &str) -> bool {
    value == "none" || PALETTE.iter().any(|p| p.outlook_preset == value)
}

/// A colour as the API stores it: a palette name (any case, answered in the palette's case) or
/// `#rrggbb` (lower-cased). `None` for anything else.
pub fn normalize(value: &str) -> Option<String> {
    let v = value.trim();
    if let Some(p) = PALETTE.iter().find(|p| p.name.eq_ignore_ascii_case(v)) {
        return Some(p.name.to_string());
    }
    rgb(v).map(|_| v.to_ascii_lowercase())
}

fn rgb(hex: &str) -> Option<(i32, i32, i32)> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let n = |i: usize| i32::from_str_radix(&h[i..i + 2], 16).ok();
    Some((n(0)?, n(2)?, n(4)?))
}

/// The palette colour a stored colour reaches the providers as.
pub fn resolve(stored: &str) -> Option<LabelColor> {
    if let Some(p) = PALETTE.iter().find(|p| p.name.eq_ignore_ascii_case(stored)) {
        return Some(*p);
    }
    let (r, g, b) = rgb(stored)?;
    PALETTE.iter().copied().min_by_key(|p| {
        let (pr, pg, pb) = rgb(p.gmail_background).unwrap_or_default();
        (pr - r).pow(2) + (pg - g).pow(2) + (pb - b).pow(2)
    })
}

/// The palette names, for error messages and documentation.
pub fn names() -> Vec<&'static str> {
    PALETTE.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_palette_colour_is_one_gmail_and_outlook_accept() {
        for p in PALETTE {
            assert!(GMAIL_COLORS.contains(&p.gmail_background), "{}", p.name);
            assert!(GMAIL_COLORS.contains(&p.gmail_text), "{}", p.name);
            assert!(is_outlook_preset(p.outlook_preset), "{}", p.name);
        }
        let presets: std::collections::BTreeSet<_> =
            PALETTE.iter().map(|p| p.outlook_preset).collect();
        assert_eq!(presets.len(), 25, "each preset once");
    }

    #[test]
    fn colours_are_palette_names_or_hex() {
        assert_eq!(normalize("Blue").as_deref(), Some("blue"));
        assert_eq!(normalize("darksteel").as_deref(), Some("darkSteel"));
        assert_eq!(normalize(" #A0B1C2 ").as_deref(), Some("#a0b1c2"));
        for bad in ["", "#12345", "#1234567", "#ggggg0", "pink", "rgb(1,2,3)"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
        assert_eq!(resolve("green").map(|c| c.outlook_preset), Some("preset4"));
        // A custom colour goes out as the nearest palette colour.
        assert_eq!(resolve("#fa4b30").map(|c| c.name), Some("red"));
        assert_eq!(resolve("#010101").map(|c| c.name), Some("black"));
        assert_eq!(resolve("nope"), None);
    }
}
