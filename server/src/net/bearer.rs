//! Bearer credentials: the `Authorization: Bearer <token>` header, token sets compared
//! in constant time, and the scopes (read < write < admin) a client-port token grants.
//!
//! Tokens are never compared as strings: each side is hashed to a SHA-256 digest and
//! the fixed-size digests are compared with `subtle`'s constant-time equality, against
//! every token of a set without stopping early, so neither the length nor the content
//! of a configured token leaks through response timing.

use http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched
/// case-insensitively (`bearer`, `BEARER`), as HTTP auth schemes are.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The credential a request presented, kept by a long-lived stream so that it can be
/// checked again when the credentials in force change: the digest of its bearer token
/// (never the token), `None` when it presented none.
#[derive(Clone, Copy, Default)]
pub struct Presented(Option<[u8; 32]>);

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Presented(token)"
        } else {
            "Presented(none)"
        })
    }
}

impl Presented {
    pub fn of(headers: &HeaderMap) -> Presented {
        Presented(bearer_token(headers).map(digest))
    }
}

/// Accepted tokens, held as digests only (a core dump or `Debug` shows no token).
#[derive(Clone, Default)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSet({} token(s))", self.digests.len())
    }
}

impl TokenSet {
    pub fn new<T: AsRef<str>>(tokens: impl IntoIterator<Item = T>) -> TokenSet {
        TokenSet {
            digests: tokens.into_iter().map(|t| digest(t.as_ref())).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Adds the tokens of `other` (a file's tokens plus an environment variable's).
    pub fn extend(&mut self, other: TokenSet) {
        self.digests.extend(other.digests);
    }

    /// True when `token` is one of the set; constant time in the token's length and
    /// content, and in which member (if any) matched.
    pub fn contains(&self, token: &str) -> bool {
        self.holds(&digest(token))
    }

    fn holds(&self, given: &[u8; 32]) -> bool {
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |found, d| found | d.ct_eq(given));
        found.into()
    }
}

/// True when no token is configured, or the request carries `Bearer <token>`.
pub fn authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    bearer_token(headers).is_some_and(|given| TokenSet::new([token]).contains(given))
}

/// What a client-port credential allows, each scope including the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Reads and SSE subscriptions.
    Read,
    /// Topology writes and health rounds.
    Write,
    /// Membership changes and bootstrap.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// What one request may do: the scope it was granted, and whether a valid token
/// granted it (a request that presented none, or a wrong one, is refused with 401;
/// one whose valid token is too weak, with 403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub scope: Option<Scope>,
    pub authenticated: bool,
}

impl Grant {
    pub fn allows(self, needed: Scope) -> bool {
        self.scope.is_some_and(|s| s >= needed)
    }
}

/// The client port's token sets, one per scope.
///
/// A scope without tokens is granted by the next stronger scope's tokens and is
/// open when no stronger scope has tokens either: with only write tokens, they also
/// grant admin; with no read tokens, reads need none. Configuration refuses the one
/// combination where this would open writes while guarding reads (read tokens
/// without write or admin tokens).
#[derive(Clone, Debug, Default)]
pub struct ClientCredentials {
    read: TokenSet,
    write: TokenSet,
    admin: TokenSet,
}

impl ClientCredentials {
    pub fn new(read: TokenSet, write: TokenSet, admin: TokenSet) -> ClientCredentials {
        ClientCredentials { read, write, admin }
    }

    /// True when writes need a token (some write or admin token is configured).
    pub fn guards_writes(&self) -> bool {
        !self.write.is_empty() || !self.admin.is_empty()
    }

    /// True when reads need a token.
    pub fn guards_reads(&self) -> bool {
        !self.read.is_empty()
    }

    /// What a request without a valid token may do.
    fn anonymous(&self) -> Option<Scope> {
        if !self.guards_writes() {
            Some(Scope::Admin)
        } else if !self.guards_reads() {
            Some(Scope::Read)
        } else {
            None
        }
    }

    /// The scope the token with digest `given` grants, if it is one of the configured tokens. Every set is
    /// searched, so the time taken does not tell which set (if any) holds the token.
    fn scope_of(&self, given: &[u8; 32]) -> Option<Scope> {
        let (admin, write, read) = (
            self.admin.holds(given),
            self.write.holds(given),
            self.read.holds(given),
        );
        if admin || (write && self.admin.is_empty()) {
            Some(Scope::Admin)
        } else if write {
            Some(Scope::Write)
        } else if read {
            Some(Scope::Read)
        } else {
            None
        }
    }

    /// What the request carrying `headers` may do on a route that needs `needed`
    /// (`None`: open to anyone). A presented token is hashed only when the anonymous
    /// scope does not already allow the route, so open reads never pay for it.
    pub fn grant_for(&self, headers: &HeaderMap, needed: Option<Scope>) -> Grant {
        let anonymous = self.anonymous();
        if needed.is_none_or(|n| anonymous >= Some(n)) {
            return Grant {
                scope: anonymous,
                authenticated: false,
            };
        }
        self.grant(headers)
    }

    /// What the request carrying `headers` may do.
    pub fn grant(&self, headers: &HeaderMap) -> Grant {
        self.grant_presented(Presented::of(headers))
    }

    /// What the holder of `presented` may do under these credentials.
    pub fn grant_presented(&self, presented: Presented) -> Grant {
        let by_token = presented.0.and_then(|given| self.scope_of(&given));
        Grant {
            scope: by_token.max(self.anonymous()),
            authenticated: by_token.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    const READ: &str = "read-token-0123456789";
    const WRITE: &str = "write-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc"] {
            assert_eq!(bearer_token(&with_auth(value)), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(bearer_token(&with_auth(value)), None, "{value}");
        }
        let set = TokenSet::new(["abc", "def"]);
        assert!(set.contains("abc") && set.contains("def"));
        assert!(!set.contains("ab") && !set.contains("abcd") && !set.contains(""));
        assert!(!TokenSet::default().contains(""));
        assert_eq!(format!("{set:?}"), "TokenSet(2 token(s))");
    }

    fn grant(creds: &ClientCredentials, value: Option<&'static str>) -> Grant {
        creds.grant(&value.map(with_auth).unwrap_or_default())
    }

    #[test]
    fn scopes_follow_the_configured_token_sets() {
        let open = ClientCredentials::default();
        assert_eq!(grant(&open, None).scope, Some(Scope::Admin));

        let all = ClientCredentials::new(
            TokenSet::new([READ]),
            TokenSet::new([WRITE]),
            TokenSet::new([ADMIN]),
        );
        assert_eq!(grant(&all, None).scope, None);
        let bearer = |t: &str| -> &'static str { Box::leak(format!("Bearer {t}").into()) };
        let g = grant(&all, Some(bearer(READ)));
        assert_eq!((g.scope, g.authenticated), (Some(Scope::Read), true));
        assert_eq!(grant(&all, Some(bearer(WRITE))).scope, Some(Scope::Write));
        assert_eq!(grant(&all, Some(bearer(ADMIN))).scope, Some(Scope::Admin));
        let wrong = grant(&all, Some("Bearer nope"));
        assert_eq!((wrong.scope, wrong.authenticated), (None, false));

        // Write tokens alone: they grant admin; reads are open.
        let write_only = ClientCredentials::new(
            TokenSet::default(),
            TokenSet::new([WRITE]),
            TokenSet::default(),
        );
        assert_eq!(grant(&write_only, None).scope, Some(Scope::Read));
        assert!(grant(&write_only, Some(bearer(WRITE))).allows(Scope::Admin));
        assert!(!grant(&write_only, Some("Bearer nope")).allows(Scope::Write));

        // Per route: an open read is allowed without looking at the token; a write
        // still needs (and checks) one.
        let headers = with_auth("Bearer nope");
        assert!(write_only
            .grant_for(&headers, Some(Scope::Read))
            .allows(Scope::Read));
        assert!(write_only.grant_for(&headers, None).allows(Scope::Read));
        let refused = write_only.grant_for(&headers, Some(Scope::Write));
        assert!(!refused.allows(Scope::Write) && !refused.authenticated);
        let writer: HeaderMap = [(
            header::AUTHORIZATION,
            format!("Bearer {WRITE}").parse().unwrap(),
        )]
        .into_iter()
        .collect();
        assert!(write_only
            .grant_for(&writer, Some(Scope::Admin))
            .allows(Scope::Admin));
    }

    #[test]
    fn a_presented_credential_is_judged_by_the_credentials_of_the_moment() {
        let bearer = |t: &str| -> HeaderMap {
            [(
                header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            )]
            .into_iter()
            .collect()
        };
        let guarded = |read: &str| {
            ClientCredentials::new(
                TokenSet::new([read]),
                TokenSet::new([WRITE]),
                TokenSet::default(),
            )
        };
        let (before, rotated) = (guarded(READ), guarded("read-token-rotated-0123"));
        let reader = Presented::of(&bearer(READ));
        assert!(before.grant_presented(reader).allows(Scope::Read));
        assert!(!rotated.grant_presented(reader).allows(Scope::Read));
        let writer = Presented::of(&bearer(WRITE));
        assert!(rotated.grant_presented(writer).allows(Scope::Read));
        // No token: allowed while reads are open, not once they are guarded.
        let anonymous = Presented::of(&HeaderMap::new());
        assert!(ClientCredentials::default()
            .grant_presented(anonymous)
            .allows(Scope::Read));
        assert!(!before.grant_presented(anonymous).allows(Scope::Read));
        // The token itself is not kept, nor shown.
        assert_eq!(format!("{reader:?}"), "Presented(token)");
        assert_eq!(format!("{anonymous:?}"), "Presented(none)");
    }
}
