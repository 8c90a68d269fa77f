//! Fail closed on this host's kernel (XFRM policies work here, ESP does not): vc's block
//! policies drop GRE between the transport IPs whatever its skb mark, lose against a policy
//! at charon's priority for the same selector, survive charon's `UPDPOLICY`, and reconcile
//! (idempotent, stale ones removed, none in external-ipsec mode). An egress capture is the
//! judge, with the unblocked case as negative control.
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vc_agent::ipsec::policy::{self, BLOCK_PRIORITY, BlockPolicy, Blocked, Direction};
use vc_testkit::{
    NetNs,
    capture::{Capture, Kind},
    privileged, veth,
};

const CPE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const DC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// Sends one raw GRE packet (GRE header + an IPv4 header stub) from the calling thread's
/// namespace with `mark`; the error the kernel gives, if any.
fn send_gre(mark: u32) -> Option<i32> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).expect("raw socket");
    if mark != 0 {
        s.set_mark(mark).expect("SO_MARK");
    }
    let mut packet = vec![0u8, 0, 0x08, 0x00, 0x45];
    packet.resize(24, 0);
    let to = SockAddr::from(SocketAddrV4::new(DC, 0));
    s.send_to(&packet, &to).err().and_then(|e| e.raw_os_error())
}

fn block(src: Ipv4Addr, dst: Ipv4Addr, dir: Direction) -> BlockPolicy {
    BlockPolicy {
        src,
        dst,
        dir,
        what: Blocked::Gre,
    }
}

#[test]
fn block_policies_stop_clear_gre_and_yield_to_charon() {
    if !privileged("block_policies_stop_clear_gre_and_yield_to_charon") {
        return;
    }
    let cpe = NetNs::new("polc").expect("ns");
    let dc = NetNs::new("pold").expect("ns");
    veth(&cpe, "wan", &dc, "wan").expect("veth");
    cpe.ip(&["addr", "add", "198.51.100.1/24", "dev", "wan"])
        .expect("addr");
    dc.ip(&["addr", "add", "198.51.100.2/24", "dev", "wan"])
        .expect("addr");
    let pcap = std::env::temp_dir().join(format!("vc-policy-{}.pcap", std::process::id()));
    let want = [
        block(CPE, DC, Direction::Out),
        block(DC, CPE, Direction::In),
    ];

    let capture = Capture::egress(&cpe, "wan", &pcap).expect("capture");
    cpe.run_in(move || {
        vc_fixtures::block_on(async {
            // Negative control first: nothing blocks GRE yet, it leaves in clear.
            assert_eq!(send_gre(0), None, "GRE without block policies");
            let r = policy::sync(&want).await.expect("sync");
            assert_eq!((r.added.len(), r.kept.len()), (2, 0));
            let r = policy::sync(&want).await.expect("sync again");
            assert_eq!((r.added.len(), r.kept.len()), (0, 2), "idempotent");
            assert_eq!(
                policy::installed().await.expect("dump").len(),
                4,
                "two marks per policy"
            );
            // Blocked, whatever the skb mark.
            for mark in [0, 1, 2, 0x7fff_ffff] {
                assert_eq!(send_gre(mark), Some(libc::EPERM), "mark {mark:#x}");
            }
        });
    })
    .expect("thread");

    // charon's policy for the same selector (same priority charon gives it), installed the way
    // charon does (update): it coexists with the blocks and wins.
    cpe.ip(&[
        "xfrm",
        "policy",
        "update",
        "src",
        "198.51.100.1/32",
        "dst",
        "198.51.100.2/32",
        "proto",
        "gre",
        "dir",
        "out",
        "priority",
        "366975",
        "action",
        "allow",
    ])
    .expect("charon-like policy");
    let policies = cpe.ip(&["xfrm", "policy"]).expect("dump");
    assert_eq!(
        policies
            .matches(&format!("priority {BLOCK_PRIORITY} "))
            .count(),
        4,
        "{policies}"
    );
    cpe.run_in(|| assert_eq!(send_gre(0), None, "charon's policy wins over the block"))
        .expect("thread");
    cpe.ip(&[
        "xfrm",
        "policy",
        "delete",
        "src",
        "198.51.100.1/32",
        "dst",
        "198.51.100.2/32",
        "proto",
        "gre",
        "dir",
        "out",
    ])
    .expect("delete");
    cpe.run_in(|| {
        assert_eq!(
            send_gre(0),
            Some(libc::EPERM),
            "blocked again once charon's is gone"
        );
    })
    .expect("thread");

    let seen = capture.stop().expect("capture");
    std::fs::remove_file(&pcap).ok();
    // Exactly the two unblocked sends left: the negative control and the one under charon's
    // (here: allow) policy.
    assert_eq!(seen.count(Kind::Gre), 2, "{seen}\n{:#?}", seen.lines);
}

/// Reconciliation: idempotent, a stale block (old address) goes, the wanted stay, and
/// external-ipsec mode wants none.
#[test]
fn block_policies_reconcile() {
    if !privileged("block_policies_reconcile") {
        return;
    }
    let cpe = NetNs::new("polr").expect("ns");
    let dc = NetNs::new("polq").expect("ns");
    veth(&cpe, "wan", &dc, "wan").expect("veth");
    cpe.ip(&["addr", "add", "198.51.100.1/24", "dev", "wan"])
        .expect("addr");
    let want = [
        block(CPE, DC, Direction::Out),
        block(DC, CPE, Direction::In),
    ];
    let stale = block(CPE, Ipv4Addr::new(198, 51, 100, 9), Direction::Out);
    cpe.run_in(move || {
        vc_fixtures::block_on(async {
            policy::sync(&[want[0], want[1], stale])
                .await
                .expect("add stale");
            let r = policy::sync(&want).await.expect("sync");
            assert_eq!(r.removed, [stale]);
            assert_eq!(policy::installed().await.expect("dump").len(), 4);
            let r = policy::sync(&[]).await.expect("none");
            assert_eq!(r.removed.len(), 2);
            assert!(policy::installed().await.expect("dump").is_empty());
        });
    })
    .expect("thread");
    std::thread::sleep(Duration::from_millis(10));
    cpe.run_in(|| assert_eq!(send_gre(0), None, "no blocks left"))
        .expect("thread");
}

/// The kernel's "protocol unreachable" for GRE it cannot deliver (what decrypted GRE meets
/// while vc's WAN receive is detached) quotes the packet: blocked out toward the DC, while
/// ping still answers. The same exchange unblocked is the negative control.
#[test]
fn icmp_unreachable_about_gre_stays_in() {
    if !privileged("icmp_unreachable_about_gre_stays_in") {
        return;
    }
    let cpe = NetNs::new("poli").expect("ns");
    let dc = NetNs::new("polj").expect("ns");
    veth(&cpe, "wan", &dc, "wan").expect("veth");
    cpe.sh("ip addr add 198.51.100.1/24 dev wan && sysctl -qw net.ipv4.icmp_ratelimit=0")
        .expect("cpe");
    dc.ip(&["addr", "add", "198.51.100.2/24", "dev", "wan"])
        .expect("addr");
    // GRE from the DC to the CPE, which has nothing to deliver it to.
    let dc_sends_gre = || {
        dc.run_in(|| {
            let s =
                Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).expect("raw socket");
            let mut packet = vec![0u8, 0, 0x08, 0x00, 0x45];
            packet.resize(24, 0);
            s.send_to(&packet, &SockAddr::from(SocketAddrV4::new(CPE, 0)))
                .expect("send");
        })
        .expect("thread");
        std::thread::sleep(Duration::from_millis(100));
    };
    let icmp_block = BlockPolicy {
        src: CPE,
        dst: DC,
        dir: Direction::Out,
        what: Blocked::IcmpUnreachable,
    };
    let sync = |want: Vec<BlockPolicy>| {
        cpe.run_in(move || {
            vc_fixtures::block_on(async move {
                policy::sync(&want).await.expect("sync");
                policy::installed().await.expect("dump").len()
            })
        })
        .expect("thread")
    };
    let unreachables = |name: &str, f: &dyn Fn()| {
        let pcap =
            std::env::temp_dir().join(format!("vc-policy-icmp-{name}-{}.pcap", std::process::id()));
        let capture = Capture::egress(&cpe, "wan", &pcap).expect("capture");
        f();
        let seen = capture.stop().expect("capture");
        let _ = std::fs::remove_file(&pcap);
        seen.lines
            .iter()
            .filter(|p| p.line.contains("ICMP") && p.line.contains("unreachable"))
            .count()
    };

    assert!(
        unreachables("open", &dc_sends_gre) >= 1,
        "unblocked, the kernel answers GRE with ICMP unreachable (the negative control)"
    );
    assert_eq!(sync(vec![icmp_block]), 2, "one policy, both marks");
    assert_eq!(
        unreachables("blocked", &dc_sends_gre),
        0,
        "blocked: nothing leaves"
    );
    let pings = dc
        .sh_output("ping -c1 -W2 198.51.100.1")
        .expect("ping")
        .status
        .success();
    assert!(pings, "echo replies are not blocked");
    assert_eq!(sync(Vec::new()), 0);
    assert!(
        unreachables("reopened", &dc_sends_gre) >= 1,
        "gone with the policy"
    );
}
