//! Credential reloads (SIGHUP): groups reloaded, and groups whose files failed
//! validation (the credentials in force were kept). Counted by `config::live`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::exposition::{encode_into, encode_scalars, Scalar};

/// Appends the reload counters to a `/metrics` answer.
pub fn render_reloads(out: &mut String, (reloaded, failed): (u64, u64)) {
    encode_into(out, ReloadCollector { reloaded, failed });
}

#[derive(Debug)]
struct ReloadCollector {
    reloaded: u64,
    failed: u64,
}

impl Collector for ReloadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_scalars(
            &mut encoder,
            &[
                Scalar::counter(
                    "concord_credential_reloads_total",
                    "Credential groups (client tokens, peer secret, TLS of a port) reloaded from their files.",
                    self.reloaded,
                ),
                Scalar::counter(
                    "concord_credential_reload_failures_total",
                    "Credential groups whose files failed validation on reload (the ones in force were kept).",
                    self.failed,
                ),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reloads_are_rendered_as_counters() {
        let mut text = String::new();
        super::render_reloads(&mut text, (3, 1));
        for line in [
            "concord_credential_reloads_total 3",
            "concord_credential_reload_failures_total 1",
            "# TYPE concord_credential_reload_failures_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
