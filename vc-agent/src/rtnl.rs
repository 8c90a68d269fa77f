//! Small facts about rtnetlink route messages that several rooms read the same way.
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_route::{
    AddressFamily,
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage},
};

/// Whether `msg` is an IPv4 route of the main table. The table is in the header, or, for
/// tables above 255, only in the `RTA_TABLE` attribute.
#[must_use]
pub fn ipv4_main_table(msg: &RouteMessage) -> bool {
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    msg.header.address_family == AddressFamily::Inet
        && table == u32::from(RouteHeader::RT_TABLE_MAIN)
}

/// The destination prefix of an IPv4 route (0.0.0.0 when the message has none: the default
/// route).
#[must_use]
pub fn ipv4_destination(msg: &RouteMessage) -> Option<Ipv4Net> {
    let dst = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    Ipv4Net::new(dst, msg.header.destination_prefix_length).ok()
}
