//! Input rules shared by commands and snapshots: id syntax, `host:port` addresses,
//! labels, and shard placement (who may be primary and replicas). Each check returns
//! a human detail; callers prefix it with the field path.

use std::collections::{BTreeMap, HashSet};

use crate::types::NodeMap;

pub const MAX_ID_LEN: usize = 128;
pub const MAX_LABEL_KEY_LEN: usize = 128;
pub const MAX_LABEL_VALUE_LEN: usize = 256;
pub const MAX_LABELS: usize = 64;
pub const MAX_ERROR_LEN: usize = 1024;

/// Quotes (a bounded prefix of) user input for an error message.
pub(crate) fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// Ids of shards and nodes: 1..=128 characters of `[A-Za-z0-9._-]`, so that they can
/// appear in URL paths, metric labels and log lines without escaping.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "is {} characters long; at most {MAX_ID_LEN} are allowed",
            id.len()
        ));
    }
    if let Some((pos, c)) = id
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{} has {c:?} at position {pos}; ids use only A-Z a-z 0-9 . _ -",
            quoted(id)
        ));
    }
    Ok(())
}

/// `host:port`, where host is a DNS name or IPv4 address, or `[IPv6]`, and port is
/// 1..=65535.
pub fn check_address(addr: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{} is not host:port: {why}", quoted(addr)));
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("no ':port'");
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return bad("the port must be a number 1-65535");
    }
    match port.parse::<u32>() {
        Ok(1..=65535) => {}
        _ => return bad("the port must be a number 1-65535"),
    }
    if host.is_empty() {
        return bad("the host is empty");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(ip6) = inner.strip_suffix(']') else {
            return bad("an IPv6 host needs a closing ']'");
        };
        let (ip, zone) = ip6.split_once('%').unwrap_or((ip6, "x"));
        let ip_ok = ip.contains(':')
            && ip
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        let zone_ok = !zone.is_empty()
            && zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ip_ok || !zone_ok {
            return bad("the IPv6 address is malformed");
        }
        return Ok(());
    }
    if host.len() > 253 {
        return bad("the host is longer than 253 characters");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return bad("the host may only hold letters, digits, '.', '-' and '_' (use [..] for IPv6)");
    }
    if host.starts_with(['.', '-']) || host.ends_with('-') || host.contains("..") {
        return bad("the host is malformed");
    }
    Ok(())
}

/// Labels: at most 64; keys 1..=128 characters of `[A-Za-z0-9._/-]`; values up to
/// 256 characters without control characters. On error, returns the key at fault
/// (`None` for the whole map) and the detail.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), (Option<String>, String)> {
    if labels.len() > MAX_LABELS {
        return Err((
            None,
            format!("{} labels; at most {MAX_LABELS} are allowed", labels.len()),
        ));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY_LEN
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err((
                Some(k.clone()),
                format!(
                    "label key {} must be 1-{MAX_LABEL_KEY_LEN} characters of A-Z a-z 0-9 . _ - /",
                    quoted(k)
                ),
            ));
        }
        if v.chars().count() > MAX_LABEL_VALUE_LEN {
            return Err((
                Some(k.clone()),
                format!("is longer than {MAX_LABEL_VALUE_LEN} characters"),
            ));
        }
        if v.chars().any(char::is_control) {
            return Err((Some(k.clone()), "must not hold control characters".into()));
        }
    }
    Ok(())
}

/// Which field of a placement is at fault.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PlacementField {
    Primary,
    /// Index into the replicas.
    Replica(usize),
}

/// Every named node is a valid, registered id; the primary is not a replica; no
/// replica is listed twice.
pub(crate) fn check_placement(
    primary: &str,
    replicas: &[String],
    nodes: &NodeMap,
) -> Result<(), (PlacementField, String)> {
    let registered = |field: PlacementField, id: &str| -> Result<(), (PlacementField, String)> {
        if let Err(detail) = check_id(id) {
            return Err((field, detail));
        }
        if !nodes.contains_key(id) {
            return Err((field, format!("node {} is not registered", quoted(id))));
        }
        Ok(())
    };
    registered(PlacementField::Primary, primary)?;
    let mut seen = HashSet::with_capacity(replicas.len());
    for (i, r) in replicas.iter().enumerate() {
        registered(PlacementField::Replica(i), r)?;
        if r == primary {
            return Err((
                PlacementField::Replica(i),
                format!(
                    "node {} is the primary; it cannot also be a replica",
                    quoted(r)
                ),
            ));
        }
        if !seen.insert(r.as_str()) {
            return Err((
                PlacementField::Replica(i),
                format!("node {} is listed twice", quoted(r)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_test.rs"]
mod tests;
