//! tshark as an independent judge of vc's encodings: every message vc sends is wrapped in a
//! TCP/179 packet (text2pcap), dissected by Wireshark's BGP dissector, and must come out
//! without a warning and with the fields vc meant.
use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use vc_agent::bgp::{
    fsm::{Fsm, FsmConfig, GracefulRestart},
    packet::{
        AsPath, Attrs, Cxt, Message, MpReach, Notification, Origin, RouteRefresh, Update,
        notification::{cease, code},
    },
    rib::default_route,
};

const AS4: Cxt = Cxt {
    four_octet_as: true,
};

fn tool_present(tool: &str) -> bool {
    let present = Command::new(tool).arg("--version").output().is_ok();
    assert!(
        present || std::env::var_os("VC_REQUIRE_PRIV").is_none(),
        "{tool} is missing (cargo xtask setup installs it)"
    );
    if !present {
        eprintln!("SKIP: {tool} is not installed");
    }
    present
}

/// One line per message: the requested fields, `|`-separated, as tshark prints them.
fn dissect(messages: &[Vec<u8>], fields: &[&str]) -> Vec<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vc-tshark-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (txt, pcap) = (dir.join("in.txt"), dir.join("out.pcap"));
    let mut dump = String::new();
    for m in messages {
        // text2pcap: each packet starts at offset 0.
        let _ = write!(dump, "000000");
        for b in m {
            let _ = write!(dump, " {b:02x}");
        }
        dump.push('\n');
    }
    std::fs::write(&txt, dump).expect("hex dump");
    let ok = Command::new("text2pcap")
        .args(["-q", "-T", "179,179"])
        .arg(&txt)
        .arg(&pcap)
        .status()
        .expect("text2pcap");
    assert!(ok.success());
    let warnings = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-Y", "_ws.malformed || _ws.expert.severity >= 6291456"])
        .args([
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ])
        .output()
        .expect("tshark");
    let warnings = String::from_utf8_lossy(&warnings.stdout).into_owned();
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&pcap)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(warnings.trim().is_empty(), "tshark objects: {warnings}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn tshark_reads_what_vc_sends() {
    if !tool_present("tshark") || !tool_present("text2pcap") {
        return;
    }
    let fsm = Fsm::new(FsmConfig {
        local_asn: 65001,
        remote_asn: 65010,
        router_id: Ipv4Addr::new(100, 64, 0, 1),
        hold_time: 90,
        connect_retry: Duration::from_secs(10),
        idle_hold: Duration::from_secs(5),
        idle_hold_max: Duration::from_mins(1),
        passive: false,
        graceful_restart: GracefulRestart {
            restart_time: 120,
            restarted: true,
        },
    });
    let nh = Ipv4Addr::new(100, 64, 0, 1);
    let messages = [
        Message::Open(fsm.our_open()),
        Message::Keepalive,
        Message::Update(default_route(65001, nh, AS4)),
        Message::Update(Update::default()),
        Message::Notification(Notification::with_data(
            code::CEASE,
            cease::MAX_PREFIXES,
            vec![0, 1, 1, 0, 0, 0, 10],
        )),
        Message::RouteRefresh(RouteRefresh {
            afi: 1,
            subtype: 0,
            safi: 1,
        }),
    ];
    let lines = dissect(
        &messages.iter().map(|m| m.encode(AS4)).collect::<Vec<_>>(),
        &[
            "bgp.type",
            "bgp.open.myas",
            "bgp.open.holdtime",
            "bgp.open.identifier",
            "bgp.cap.type",
            "bgp.cap.4as",
            "bgp.update.path_attribute.origin",
            "bgp.update.path_attribute.as_path_segment.as4",
            "bgp.update.path_attribute.next_hop",
            "bgp.nlri_prefix",
            "bgp.prefix_length",
            "bgp.notify.major_error",
            "bgp.notify.minor_error_cease",
            "bgp.route_refresh.afi",
            "bgp.route_refresh.safi",
            "bgp.cap.gr.timers.restart_flag",
            "bgp.cap.gr.timers.restart_time",
            "bgp.cap.gr.afi",
            "bgp.cap.gr.safi",
            "bgp.cap.gr.flag.pfs",
        ],
    );
    assert_eq!(
        lines,
        vec![
            // OPEN: AS 65001, hold 90, id, capabilities MP, RR, GR, 4-octet AS 65001; graceful
            // restart (RFC 4724): restarted, 120 s, IPv4 unicast with forwarding preserved.
            "1|65001|90|100.64.0.1|1,2,64,65|65001||||||||||1|120|1|1|1",
            "4|||||||||||||||||||",
            // The default route: IGP, path 65001, next hop our tunnel IP, 0.0.0.0/0.
            "2||||||0|65001|100.64.0.1|0.0.0.0|0|||||||||",
            "2|||||||||||||||||||",
            "3|||||||||||6|1|||||||",
            "5|||||||||||||1|1|||||",
        ],
    );
}

#[test]
fn tshark_reads_the_attributes_vc_decodes() {
    if !tool_present("tshark") || !tool_present("text2pcap") {
        return;
    }
    // An UPDATE with everything vc interprets, built in code and encoded by vc.
    let update = Update {
        withdrawn: vec!["198.18.10.128/25".parse().expect("net")],
        attrs: Some(Attrs {
            origin: Some(Origin::Incomplete),
            as_path: Some(AsPath::sequence(&[65010, 4_200_000_011])),
            next_hop: Some(Ipv4Addr::new(100, 64, 0, 2)),
            med: Some(50),
            communities: vec![(65010 << 16) | 0x012c],
            mp_reach: Some(MpReach::Ipv4Unicast {
                next_hop: Ipv4Addr::new(100, 64, 0, 2),
                nlri: vec!["198.18.11.0/24".parse().expect("net")],
            }),
            ..Attrs::default()
        }),
        nlri: vec!["198.18.10.0/25".parse().expect("net")],
        faults: vec![],
    };
    let lines = dissect(
        &[Message::Update(update).encode(AS4)],
        &[
            "bgp.withdrawn_prefix",
            "bgp.update.path_attribute.origin",
            "bgp.update.path_attribute.as_path_segment.as4",
            "bgp.update.path_attribute.next_hop",
            "bgp.update.path_attribute.multi_exit_disc",
            "bgp.update.path_attribute.community_as",
            "bgp.update.path_attribute.community_value",
            "bgp.mp_reach_nlri_ipv4_prefix",
            "bgp.nlri_prefix",
        ],
    );
    assert_eq!(
        lines,
        vec!["198.18.10.128|2|65010,4200000011|100.64.0.2|50|65010|300|198.18.11.0|198.18.10.0"]
    );
}
