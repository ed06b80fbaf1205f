//! Prometheus counters in text format. Labelled counters live in one map; the set of label values
//! is small and bounded (status classes, provider ids, error kinds).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Values that go up and down (the send queue depth).
    gauges: Mutex<BTreeMap<&'static str, i64>>,
}

const HELP: &[(&str, &str)] = &[
    (
        "email_manager_http_requests_total",
        "HTTP requests served, by status class.",
    ),
    (
        "email_manager_provider_errors_total",
        "Errors from mail providers, by provider and kind.",
    ),
    (
        "email_manager_accounts_linked_total",
        "Mailboxes linked or re-linked, by provider.",
    ),
    (
        "email_manager_sync_runs_total",
        "Sync runs, by kind (full, incremental, resync) and result (ok or error kind).",
    ),
    (
        "email_manager_sync_messages_total",
        "Messages added, updated and removed by sync, by provider.",
    ),
    (
        "email_manager_auth_failures_total",
        "API requests refused by authentication, by error code.",
    ),
    (
        "email_manager_mass_messages_sent_total",
        "Mass-mailing messages sent, by provider.",
    ),
    (
        "email_manager_mass_messages_failed_total",
        "Mass-mailing recipients given up as failed, by provider.",
    ),
];

const GAUGES: &[(&str, &str)] = &[(
    "email_manager_send_queue_depth",
    "Mass-mailing recipients queued in running jobs (all replicas).",
)];

impl Metrics {
    /// Sets a gauge of [`GAUGES`].
    pub fn set_gauge(&self, name: &'static str, value: i64) {
        let mut map = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(name, value);
    }

    /// Adds one to `name{labels}`; `labels` is already in Prometheus syntax (`a="b",c="d"`).
    pub fn inc(&self, name: &'static str, labels: String) {
        self.add(name, labels, 1);
    }

    /// Adds `n` to `name{labels}`.
    pub fn add(&self, name: &'static str, labels: String, n: u64) {
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((name, labels)).or_insert(0) += n;
    }

    pub fn provider_error(&self, provider: &str, kind: &str) {
        self.inc(
            "email_manager_provider_errors_total",
            format!("provider=\"{provider}\",kind=\"{kind}\""),
        );
    }

    pub fn render(&self) -> String {
        let map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, labels), v) in map.iter().filter(|((n, _), _)| n == name) {
                if labels.is_empty() {
                    let _ = writeln!(out, "{n} {v}");
                } else {
                    let _ = writeln!(out, "{n}{{{labels}}} {v}");
                }
            }
        }
        let gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help) in GAUGES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", gauges.get(name).copied().unwrap_or(0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc("email_manager_http_requests_total", "status=\"2xx\"".into());
        m.inc("email_manager_http_requests_total", "status=\"2xx\"".into());
        m.provider_error("google", "invalid_grant");
        let text = m.render();
        assert!(text.contains("email_manager_http_requests_total{status=\"2xx\"} 2\n"));
        assert!(text.contains(
            "email_manager_provider_errors_total{provider=\"google\",kind=\"invalid_grant\"} 1\n"
        ));
        assert!(text.contains("# TYPE email_manager_auth_failures_total counter"));
    }
}
