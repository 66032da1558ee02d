//! Configuration of the media plane.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Configuration of the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Where the UDP sockets bind: `0.0.0.0` in production (one socket per interface, loopback
    /// skipped), `127.0.0.1` in tests.
    pub bind_ip: IpAddr,
    /// ICE port range, inclusive. `0, 0` means ephemeral ports. webrtc 0.21.1 has no UDP mux:
    /// every peer connection binds its own socket, so the range bounds the number of
    /// connections too (and is the firewall rule to open).
    pub udp_port_min: u16,
    /// Upper end of the port range (inclusive).
    pub udp_port_max: u16,
    /// NAT 1:1 addresses: when non-empty, every host candidate of an answer is announced with
    /// these addresses (same family) instead of the bound one. List the private address too if
    /// some clients reach the server directly.
    pub announced_ips: Vec<IpAddr>,
    /// STUN/TURN URLs for clients, passed through untouched
    /// ([`Sfu::ice_servers`](crate::Sfu::ice_servers)); the server itself gathers host
    /// candidates only.
    pub ice_servers: Vec<String>,
    /// Most peer connections held at once; beyond it
    /// [`Sfu::handle_offer`](crate::Sfu::handle_offer) fails.
    pub max_peer_connections: usize,
    /// A connection that does not reach `connected` within this time after it is created (or
    /// after ICE failed) is closed.
    pub connect_timeout: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port_min: 0,
            udp_port_max: 0,
            announced_ips: Vec::new(),
            ice_servers: Vec::new(),
            max_peer_connections: 1000,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl MediaConfig {
    /// Loopback-only configuration with ephemeral ports, for tests.
    pub fn loopback() -> Self {
        MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), ..MediaConfig::default() }
    }
}
