//! Address allow-lists: networks (CIDR) with port ranges, checked against a resolved
//! socket address before this process connects anywhere on someone else's say-so
//! (the data-node health probes go to addresses clients register).

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// An inclusive port range, written `1024-65535` or a single port (`9001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PortsText")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// The forms a port range is written in (YAML reads `9001` as a number).
#[derive(Deserialize)]
#[serde(untagged)]
enum PortsText {
    One(u16),
    Text(String),
}

impl TryFrom<PortsText> for PortRange {
    type Error = String;

    fn try_from(text: PortsText) -> Result<PortRange, String> {
        let text = match text {
            PortsText::One(port) => return PortRange::new(port, port),
            PortsText::Text(text) => text,
        };
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{text}` is not a port or a range such as 1024-65535"))
        };
        match text.split_once('-') {
            Some((first, last)) => PortRange::new(port(first)?, port(last)?),
            None => {
                let one = port(&text)?;
                PortRange::new(one, one)
            }
        }
    }
}

impl PortRange {
    pub const UNPRIVILEGED: PortRange = PortRange {
        first: 1024,
        last: 65535,
    };

    fn new(first: u16, last: u16) -> Result<PortRange, String> {
        if first == 0 || first > last {
            return Err(format!("port range {first}-{last} is empty or starts at 0"));
        }
        Ok(PortRange { first, last })
    }

    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::UNPRIVILEGED
    }
}

/// One allowed network and its ports (ports default to 1024-65535).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRule {
    pub network: IpNet,
    #[serde(default)]
    pub ports: PortRange,
}

/// The addresses a connection may go to: any rule's network and ports. An empty
/// list allows nothing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AllowList(pub Vec<AddressRule>);

impl AllowList {
    /// Loopback, the RFC 1918 private ranges and IPv6 unique-local addresses, on
    /// unprivileged ports: where data nodes of a private deployment listen, and not
    /// the privileged services (SSH, SMTP, HTTP) of the hosts around them.
    pub fn private_networks() -> AllowList {
        let rule = |network: &str| AddressRule {
            network: network.parse().expect("static network"),
            ports: PortRange::UNPRIVILEGED,
        };
        AllowList(
            [
                "127.0.0.0/8",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "::1/128",
                "fc00::/7",
            ]
            .into_iter()
            .map(rule)
            .collect(),
        )
    }

    /// True when some rule allows `addr` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn permits(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.0
            .iter()
            .any(|rule| rule.network.contains(&ip) && rule.ports.contains(addr.port()))
    }
}

impl Default for AllowList {
    fn default() -> Self {
        AllowList::private_networks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(list: &AllowList, addr: &str) -> bool {
        list.permits(addr.parse().unwrap())
    }

    #[test]
    fn the_default_allows_private_unprivileged_addresses_only() {
        let list = AllowList::default();
        for ok in [
            "127.0.0.1:9001",
            "10.1.2.3:7000",
            "172.31.0.1:1024",
            "192.168.1.1:65535",
            "[::1]:9001",
            "[fd00::1]:9001",
            "[::ffff:10.0.0.1]:9001",
        ] {
            assert!(permits(&list, ok), "{ok}");
        }
        for refused in [
            "127.0.0.1:22",
            "10.0.0.1:80",
            "172.32.0.1:9001",
            "8.8.8.8:9001",
            "169.254.169.254:8080",
            "[2001:db8::1]:9001",
            "0.0.0.0:9001",
        ] {
            assert!(!permits(&list, refused), "{refused}");
        }
    }

    #[test]
    fn rules_parse_from_yaml() {
        let list: AllowList = serde_yaml_ng::from_str(
            "- network: 203.0.113.0/24\n  ports: 80\n- network: 10.0.0.0/8\n  ports: 8000-8100\n- network: 192.0.2.7/32\n",
        )
        .unwrap();
        assert!(permits(&list, "203.0.113.9:80"));
        assert!(!permits(&list, "203.0.113.9:81"));
        assert!(permits(&list, "10.9.9.9:8100"));
        assert!(!permits(&list, "10.9.9.9:7999"));
        assert!(permits(&list, "192.0.2.7:1024"));
        assert!(!permits(&AllowList(Vec::new()), "127.0.0.1:9001"));
        for bad in [
            "- network: 10.0.0.0/33\n",
            "- network: 10.0.0.0/8\n  ports: 9-1\n",
            "- network: 10.0.0.0/8\n  ports: http\n",
            "- network: 10.0.0.0/8\n  port: 80\n",
        ] {
            assert!(serde_yaml_ng::from_str::<AllowList>(bad).is_err(), "{bad}");
        }
    }
}
