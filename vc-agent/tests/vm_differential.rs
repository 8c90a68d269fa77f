//! Differential test: the same packets through Linux's own GRE and through vc, in the VM
//! (6.1, real ESP), compared field by field. The oracle is `ip_gre` on the CPE set to build
//! the outer header as vc's design says (`tos inherit nopmtudisc`, TTL 64): what remains
//! different is a deliberate choice, named in [`DIFFERENCES`] with its reason, and the test
//! fails on any difference not named there, or on a named one that no longer shows.
//!
//! Encapsulation: inner packets from the LAN host (raw, so every header field is ours);
//! the decrypted GRE is captured on the DC's WAN device (tunnel-mode ESP re-injects it
//! there). Decapsulation: GRE from the DC (a raw GRE socket, so the outer ECN and the GRE
//! flags are ours), encrypted by the DC's XFRM; what reaches the LAN host is captured.
//! Each probe is known by its inner IP ID.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, SocketAddrV4},
    path::PathBuf,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vc_fixtures::vm_lab::{CPE_GRE, Cpe, DC_GRE, DC_HOST, LAN_HOST, Lab};
use vc_testkit::{
    NetNs,
    capture::{self, Capture, Direction},
    packet::{self, Ipv4, Tcp, udp_in_ipv4},
    vm,
};

const ECN: [(&str, u8); 4] = [("Not-ECT", 0), ("ECT(1)", 1), ("ECT(0)", 2), ("CE", 3)];
const EF: u8 = 0xb8;

/// What differs from Linux on purpose. `probe` names the probe (see [`encap_probes`],
/// [`decap_probes`]); `field` the field that differs.
struct Difference {
    probe: &'static str,
    field: &'static str,
    why: &'static str,
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        probe: "encap TCP SYN",
        field: "inner packet",
        why: "vc clamps the MSS of SYNs to the tunnel's (1350 here, R14) both ways; Linux's \
              GRE does not (a router needs a separate TCPMSS rule)",
    },
    Difference {
        probe: "decap TCP SYN",
        field: "inner packet",
        why: "the same clamp on the way in",
    },
    Difference {
        probe: "encap CE",
        field: "outer ECN",
        why: "RFC 6040 normal mode copies CE to the outer header; Linux resets it to ECT(0) \
              (RFC 3168 limited functionality). Congestion seen before the tunnel stays \
              visible on the path",
    },
    Difference {
        probe: "decap inner source outside the Cisco prefix",
        field: "delivered",
        why: "only the DC may speak through its tunnel: vc drops other inner sources \
              (inner_source_not_allowed); Linux forwards them",
    },
    Difference {
        probe: "decap GRE checksum",
        field: "delivered",
        why: "vc accepts a GRE checksum without verifying it (ESP authenticated the packet); \
              Linux drops it on a tunnel not configured with icsum",
    },
    Difference {
        probe: "decap GRE sequence number",
        field: "delivered",
        why: "vc configures no sequence numbers and drops GRE that carries one \
              (gre_unsupported); Linux ignores it",
    },
    Difference {
        probe: "decap outer fragments",
        field: "inner packet",
        why: "both deliver the 1628-byte inner packet, in two fragments: Linux forwards it \
              whole and the LAN link (1500) cuts it; vc's agent delivers it into the tunnel \
              interface cut at the tunnel MTU (1400), since a veth takes no larger frame, and \
              the kernel forwards the pieces as they are",
    },
];

/// One decrypted GRE packet as the DC received it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outer {
    tos: u8,
    df: bool,
    ttl: u8,
    id: u16,
    gre: Vec<u8>,
    inner: Vec<u8>,
}

/// What one CPE did with every probe: probe → the packets seen.
struct Seen {
    encap: BTreeMap<&'static str, Vec<Outer>>,
    decap: BTreeMap<String, Vec<Vec<u8>>>,
}

fn results(name: &str) -> PathBuf {
    std::env::var_os(vm::RESULTS_DIR)
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(name)
}

fn udp(tos: u8, id: u16) -> Ipv4 {
    Ipv4::new(LAN_HOST.octets(), DC_HOST.octets(), 0)
        .tos(tos)
        .id(id)
}

/// Inner packets from the LAN host to a DC host, by name, each with its own inner ID.
fn encap_probes() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let payload = |n: usize| vec![0x80; n];
    let df = 0x4000;
    let mut probes = vec![];
    let names = ["encap Not-ECT", "encap ECT(1)", "encap ECT(0)", "encap CE"];
    for (id, (name, (_, ecn))) in (0x1000..).zip(names.into_iter().zip(ECN)) {
        probes.push((
            name,
            vec![udp_in_ipv4(
                &udp(EF | ecn, id).frag_off(df),
                5004,
                5004,
                &payload(160),
            )],
        ));
    }
    let id = |n: u16| 0x1100 + n;
    probes.extend([
        (
            "encap no DF",
            vec![udp_in_ipv4(&udp(0, id(0)).frag_off(0), 1, 2, &payload(100))],
        ),
        (
            "encap TTL 2",
            vec![udp_in_ipv4(&udp(0, id(1)).ttl(2).frag_off(df), 1, 2, b"x")],
        ),
        (
            "encap TTL 1",
            vec![udp_in_ipv4(&udp(0, id(2)).ttl(1).frag_off(df), 1, 2, b"x")],
        ),
        (
            "encap IP options",
            vec![udp_in_ipv4(
                &udp(0, id(3)).frag_off(0).options(&[0x94, 0x04, 0, 0]),
                1,
                2,
                b"router alert",
            )],
        ),
        (
            "encap fragments",
            vec![
                udp_in_ipv4(&udp(0, id(4)).frag_off(0x2000), 1, 2, &payload(64)),
                Ipv4::new(LAN_HOST.octets(), DC_HOST.octets(), packet::IPPROTO_UDP)
                    .id(id(4))
                    .frag_off(9)
                    .packet(&payload(40)),
            ],
        ),
        (
            "encap 1400 B DF (the tunnel MTU)",
            vec![udp_in_ipv4(
                &udp(0, id(5)).frag_off(df),
                1,
                2,
                &payload(1372),
            )],
        ),
        (
            "encap 1401 B DF",
            vec![udp_in_ipv4(
                &udp(0, id(6)).frag_off(df),
                1,
                2,
                &payload(1373),
            )],
        ),
        (
            "encap TCP SYN",
            vec![Tcp::syn(1460).in_ipv4(&udp(0, id(8)), b"")],
        ),
        (
            "encap 1401 B no DF",
            vec![udp_in_ipv4(
                &udp(0, id(7)).frag_off(0),
                1,
                2,
                &payload(1373),
            )],
        ),
    ]);
    probes
}

fn inner_id(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[4], packet[5]])
}

/// Sends raw IPv4 packets (headers as given) from `ns`.
/// Sends `packets` (TOS, bytes) on a raw socket of `protocol` in `ns`: whole IPv4 packets
/// for `IPPROTO_RAW`, else payloads under a header the kernel builds with that TOS.
/// `pmtu_mode` (`IP_MTU_DISCOVER`) decides DF and local fragmentation.
fn send_raw(
    ns: &NetNs,
    protocol: i32,
    bind: Option<Ipv4Addr>,
    pmtu_mode: libc::c_int,
    packets: Vec<(u8, Vec<u8>)>,
) {
    ns.run_in(move || {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))
            .expect("raw socket");
        if protocol == libc::IPPROTO_RAW {
            s.set_header_included_v4(true).expect("IP_HDRINCL");
        }
        set_pmtu_mode(&s, pmtu_mode);
        if let Some(addr) = bind {
            s.bind(&SockAddr::from(SocketAddrV4::new(addr, 0)))
                .expect("bind");
        }
        for (tos, p) in packets {
            if protocol != libc::IPPROTO_RAW {
                s.set_tos_v4(u32::from(tos)).expect("IP_TOS");
            }
            let to = if protocol == libc::IPPROTO_RAW {
                Ipv4Addr::new(p[16], p[17], p[18], p[19])
            } else {
                CPE_GRE
            };
            s.send_to(&p, &SockAddr::from(SocketAddrV4::new(to, 0)))
                .unwrap_or_else(|e| panic!("sending {} bytes: {e}", p.len()));
        }
    })
    .expect("thread");
}

fn set_pmtu_mode(s: &Socket, mode: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and an int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw const mode).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).expect("small"),
        )
    };
    assert_eq!(
        rc,
        0,
        "IP_MTU_DISCOVER: {}",
        std::io::Error::last_os_error()
    );
}

/// GRE from the DC to the CPE: a name, the inner IP ID, the outer TOS, GRE header + payload.
type DcProbe = (String, u16, u8, Vec<u8>);

fn from_dc(tos: u8, id: u16) -> Ipv4 {
    Ipv4::new(DC_HOST.octets(), LAN_HOST.octets(), 0)
        .tos(tos)
        .id(id)
        .frag_off(0x4000)
}

fn decap_probes() -> Vec<DcProbe> {
    let mut probes = vec![];
    let mut id = 0x2000;
    for (outer_name, outer) in ECN {
        for (inner_name, inner) in ECN {
            id += 1;
            let packet = udp_in_ipv4(&from_dc(EF | inner, id), 5004, 5004, &[0x80; 160]);
            probes.push((
                format!("decap {inner_name} under {outer_name}"),
                id,
                EF | outer,
                packet::gre(0, 0x0800, &[], &packet),
            ));
        }
    }
    let plain = |id: u16| udp_in_ipv4(&from_dc(0, id), 1, 2, b"x");
    let other_source = udp_in_ipv4(
        &Ipv4::new([192, 0, 2, 1], LAN_HOST.octets(), 0).id(0x2100),
        1,
        2,
        b"x",
    );
    let with_csum = {
        let inner = plain(0x2101);
        let mut gre = packet::gre(0x8000, 0x0800, &[0, 0, 0, 0], &inner);
        let check = packet::checksum(&gre);
        gre[4..6].copy_from_slice(&check.to_be_bytes());
        gre
    };
    // Larger than the path from the DC: its kernel fragments the GRE packet before XFRM
    // encrypts each fragment, so the CPE decrypts outer GRE fragments (a DC sending DF=0
    // packets larger than the path does this).
    let large = udp_in_ipv4(&from_dc(0, 0x2104).frag_off(0), 1, 2, &[0x55; 1600]);
    probes.extend([
        (
            "decap inner source outside the Cisco prefix".into(),
            0x2100,
            0,
            packet::gre(0, 0x0800, &[], &other_source),
        ),
        ("decap GRE checksum".into(), 0x2101, 0, with_csum),
        (
            "decap TCP SYN".into(),
            0x2105,
            0,
            packet::gre(
                0,
                0x0800,
                &[],
                &Tcp::syn(1460).in_ipv4(&from_dc(0, 0x2105), b""),
            ),
        ),
        (
            "decap GRE sequence number".into(),
            0x2102,
            0,
            packet::gre(0x1000, 0x0800, &[0, 0, 0, 7], &plain(0x2102)),
        ),
        (
            "decap TTL 1".into(),
            0x2103,
            0,
            packet::gre(
                0,
                0x0800,
                &[],
                &udp_in_ipv4(&from_dc(0, 0x2103).ttl(1), 1, 2, b"x"),
            ),
        ),
        (
            "decap outer fragments".into(),
            0x2104,
            0,
            packet::gre(0, 0x0800, &[], &large),
        ),
    ]);
    probes
}

/// The decrypted GRE packets in a capture on the DC's WAN device, by inner ID.
fn outers(frames: &[Vec<u8>]) -> Vec<Outer> {
    frames
        .iter()
        .map(|f| &f[14..])
        .filter(|ip| ip[9] == packet::IPPROTO_GRE && ip[12..16] == CPE_GRE.octets())
        .map(|ip| {
            let hlen = usize::from(ip[0] & 0x0f) * 4;
            Outer {
                tos: ip[1],
                df: ip[6] & 0x40 != 0,
                ttl: ip[8],
                id: u16::from_be_bytes([ip[4], ip[5]]),
                gre: ip[hlen..hlen + 4].to_vec(),
                inner: ip[hlen + 4..].to_vec(),
            }
        })
        .collect()
}

fn observe(cpe: Cpe, fast_path: bool, label: &str) -> Seen {
    let mut lab = Lab::new(cpe);
    if cpe == Cpe::Vc {
        // As `vc-agent run` does: outer GRE fragments reach the LAN through the agent.
        lab.deliver_reassembled();
    }
    if cpe == Cpe::Vc && !fast_path {
        lab.maps().set_settings(0).expect("fast path off");
    }
    // Resolve neighbours first, so that nothing is queued behind ARP.
    assert!(
        lab.lan
            .sh_output(&format!("ping -c1 -W3 {DC_HOST}"))
            .expect("ping")
            .status
            .success(),
        "{label}: the lab carries traffic"
    );

    let file = results(&format!("differential-{label}-encap.pcap"));
    let cap = Capture::start(&lab.dc, "wan0", Direction::In, "ip proto 47", &file)
        .expect("capture at the DC");
    let probes = encap_probes();
    let packets = probes
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| (0, p.clone())))
        .collect();
    // IP_PMTUDISC_PROBE: our headers as given, whatever path MTU an earlier probe taught the
    // host.
    send_raw(
        &lab.lan,
        libc::IPPROTO_RAW,
        None,
        libc::IP_PMTUDISC_PROBE,
        packets,
    );
    cap.stop().expect("capture");
    let seen = outers(&capture::frames(&file).expect("pcap"));
    let mut encap: BTreeMap<&'static str, Vec<Outer>> = BTreeMap::new();
    for (name, ps) in &probes {
        let id = inner_id(&ps[0]);
        encap.insert(
            *name,
            seen.iter()
                .filter(|o| o.inner.len() >= 20 && inner_id(&o.inner) == id)
                .cloned()
                .collect(),
        );
    }

    let file = results(&format!("differential-{label}-decap.pcap"));
    let cap = Capture::start(&lab.lan, "eth0", Direction::In, "ip and not icmp", &file)
        .expect("capture at the LAN host");
    let probes = decap_probes();
    // IP_PMTUDISC_DONT: no DF on the outer header, and a GRE packet larger than the path is
    // fragmented by the DC's kernel.
    send_raw(
        &lab.dc,
        libc::IPPROTO_GRE,
        Some(DC_GRE),
        libc::IP_PMTUDISC_DONT,
        probes
            .iter()
            .map(|(_, _, tos, gre)| (*tos, gre.clone()))
            .collect(),
    );
    cap.stop().expect("capture");
    let frames = capture::frames(&file).expect("pcap");
    let mut decap: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, id, _, _) in &probes {
        decap.insert(
            name.clone(),
            frames
                .iter()
                .map(|f| f[14..].to_vec())
                .filter(|ip| inner_id(ip) == *id)
                .collect(),
        );
    }
    for (probe, seen) in &encap {
        eprintln!("{label}: {probe}: {} packets", seen.len());
    }
    for (probe, seen) in &decap {
        eprintln!("{label}: {probe}: {} packets", seen.len());
    }
    Seen { encap, decap }
}

/// Every field in which `vc` and `linux` differ for one probe.
fn encap_differences(linux: &[Outer], vc: &[Outer]) -> BTreeSet<&'static str> {
    let mut fields = BTreeSet::new();
    if linux.len() != vc.len() {
        fields.insert("packets");
        return fields;
    }
    for (l, v) in linux.iter().zip(vc) {
        if l.tos >> 2 != v.tos >> 2 {
            fields.insert("outer DSCP");
        }
        if l.tos & 3 != v.tos & 3 {
            fields.insert("outer ECN");
        }
        if l.df != v.df {
            fields.insert("outer DF");
        }
        if l.ttl != v.ttl {
            fields.insert("outer TTL");
        }
        if l.gre != v.gre {
            fields.insert("GRE header");
        }
        if l.inner != v.inner {
            fields.insert("inner packet");
        }
    }
    fields
}

fn decap_differences(linux: &[Vec<u8>], vc: &[Vec<u8>]) -> BTreeSet<&'static str> {
    let mut fields = BTreeSet::new();
    if linux.len() == vc.len() {
        for (l, v) in linux.iter().zip(vc) {
            if l[1] & 3 != v[1] & 3 {
                fields.insert("inner ECN");
            }
            if l != v {
                fields.insert("inner packet");
            }
        }
    } else {
        fields.insert("delivered");
    }
    fields
}

/// Compares one vc CPE with the oracle: every difference must be named, and the IDs fresh.
fn compare(linux: &Seen, vc: &Seen, label: &str) -> Vec<String> {
    let mut found = vec![];
    let named = |probe: &str, field: &str| {
        DIFFERENCES
            .iter()
            .any(|d| d.probe == probe && d.field == field)
    };
    let mut shown = BTreeSet::new();
    for (probe, l) in &linux.encap {
        let v = &vc.encap[probe];
        for field in encap_differences(l, v) {
            if named(probe, field) {
                shown.insert((probe.to_string(), field));
            } else {
                found.push(format!(
                    "{label}: {probe}: {field} differs\n  linux {l:x?}\n  vc    {v:x?}"
                ));
            }
        }
    }
    // The 16-bit outer IDs are fresh on both sides (their values differ by design): never the
    // inner packet's, never repeated.
    let ids: Vec<u16> = vc.encap.values().flatten().map(|o| o.id).collect();
    let inner: BTreeSet<u16> = vc
        .encap
        .values()
        .flatten()
        .filter(|o| o.inner.len() >= 20)
        .map(|o| inner_id(&o.inner))
        .collect();
    if ids.iter().collect::<BTreeSet<_>>().len() != ids.len()
        || ids.iter().any(|i| inner.contains(i))
    {
        found.push(format!(
            "{label}: outer IDs repeat or copy the inner ones: {ids:x?}"
        ));
    }
    for (probe, l) in &linux.decap {
        let v = &vc.decap[probe];
        for field in decap_differences(l, v) {
            if named(probe, field) {
                shown.insert((probe.clone(), field));
            } else {
                found.push(format!(
                    "{label}: {probe}: {field} differs (linux {} packets, vc {})",
                    l.len(),
                    v.len()
                ));
            }
        }
    }
    for d in DIFFERENCES {
        if !shown.contains(&(d.probe.to_string(), d.field)) {
            found.push(format!(
                "{label}: the named difference \"{}: {}\" no longer shows ({})",
                d.probe, d.field, d.why
            ));
        }
    }
    found
}

#[test]
fn vc_differs_from_linux_gre_only_where_named() {
    if !vm::inside_or_boot("vc_differs_from_linux_gre_only_where_named") {
        return;
    }
    let linux = observe(Cpe::KernelGreCopying, true, "linux");
    // The oracle itself is sane: the plain probes arrived, TTL-expired ones did not.
    assert_eq!(
        linux.encap["encap Not-ECT"].len(),
        1,
        "linux carried the plain probe"
    );
    assert!(linux.encap["encap TTL 1"].is_empty());
    assert!(
        linux.encap["encap 1401 B DF"].is_empty(),
        "too big with DF: not carried"
    );
    assert_eq!(linux.decap["decap Not-ECT under Not-ECT"].len(), 1);
    assert!(
        linux.decap["decap Not-ECT under CE"].is_empty(),
        "RFC 6040 drop"
    );

    let mut found = vec![];
    for (fast_path, label) in [(true, "vc-fast"), (false, "vc-slow")] {
        let vc = observe(Cpe::Vc, fast_path, label);
        found.extend(compare(&linux, &vc, label));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
