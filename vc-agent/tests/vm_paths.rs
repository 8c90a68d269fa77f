//! What the path between the CPE and the DCs does to the tunnels, with the whole
//! agent in IPsec mode on the lab's region (`vc_testkit::region`: strongSwan, kernel `ip_gre`
//! and BIRD 2 as the DCs), in one VM boot:
//!
//! - outer GRE fragments: DC1 sends DF=0 GRE packets larger than the path, which its kernel
//!   fragments before ESP (as a Cisco head end does by default); the CPE delivers them to
//!   the LAN host (the kernel reassembles, the agent delivers, both counted), no ICMP leaves
//!   in clear, and clear GRE fragments (a negative control, spoofed by the router) are
//!   dropped and never delivered;
//! - the path MTU: the CPE offers a costlier ESP proposal first, which the DCs refuse, and
//!   the tunnel MTU is that of the AES-GCM they picked; the WAN router's link toward DC1
//!   drops to 1300 and answers ESP with fragmentation-needed; tunnel A's MTU follows within a
//!   second, and a LAN TCP transfer through the tunnel completes;
//! - tunnel death by a WAN-path cut (the router drops ESP of DC2) and by SA deletion (DC2
//!   deletes its IKE SA while the router keeps IKE from coming back): its /25 moves to the
//!   other tunnel within the keepalive dead interval (measured), and back on recovery.
use std::{
    net::SocketAddrV4,
    path::Path,
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vc_agent::status::{AgentStatus, Counted, Hook, Outcome};
use vc_common::DropReason;
use vc_fixtures::region_agent::{
    agent_log, bring_up, interface_mtu, path_mtu_reaction, results, status, tunnel,
};
use vc_testkit::{
    capture::{self, Capture, Direction},
    packet::{self, Ipv4, udp_in_ipv4},
    region::{
        Region,
        config::Options,
        plan::{CPE_PUBLIC, DC1, DC2, DcPlan, KEEPALIVE_INTERVAL_S, LAN_HOST},
    },
    vm, wait_for,
};

/// The packets `vc_wan_rx` counted with `reason`.
fn wan_rx(s: &AgentStatus, reason: impl Into<Counted>) -> u64 {
    let reason = reason.into();
    s.datapath
        .verdicts
        .iter()
        .find(|v| v.hook == Hook::WanRx && v.reason == reason)
        .map_or(0, |v| v.packets)
}

/// `XfrmOutPolBlock` of the CPE's namespace: packets an XFRM block policy stopped.
fn xfrm_out_blocked(region: &Region) -> u64 {
    region
        .cpe
        .sh("cat /proc/net/xfrm_stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("XfrmOutPolBlock"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn paths_fragments_mtu_and_tunnel_death() {
    if !vm::inside_or_boot("paths_fragments_mtu_and_tunnel_death") {
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_vc-agent"));
    let options = Options {
        cpe_esp_offered_first: Some(COSTLIER_ESP),
        ..Options::default()
    };
    let mut region = Region::build_with(bin, &options).expect("the region");
    bring_up(&mut region, "paths");

    path_mtu_follows_fragmentation_needed(&region);
    wan_cut_moves_the_dc_prefix(&region);
    ike_sa_deletion_moves_the_dc_prefix(&region);
    outer_fragments_are_delivered(&region);
    clear_fragments_are_not(&region);
}

/// Inner packets of the probes: UDP from DC1's host to the LAN host, `PROBE_BYTES` of
/// payload, inner IDs from `PROBE_ID`.
const PROBES: u16 = 5;
const PROBE_ID: u16 = 0x6000;
const PROBE_BYTES: usize = 3000;
/// The GRE bytes in each outer fragment DC1 sends (a multiple of 8).
const FRAGMENT: usize = 1200;

/// DC1 sends DF=0 GRE packets larger than the path; they reach the CPE as outer GRE
/// fragments, each in its own ESP packet. Every inner datagram reaches the LAN host whole
/// (in fragments of the LAN's MTU, which the CPE makes when it forwards), both counters show
/// the path taken, and no ICMP leaves in clear although `ip_gre` (loaded in the VM) answers
/// each datagram it cannot place with "port unreachable".
fn outer_fragments_are_delivered(region: &Region) {
    let before = status(region);
    let blocked_before = xfrm_out_blocked(region);
    let wire = results("paths-fragments-router.pcap");
    // Everything between the CPE and the DCs is IKE or ESP: ICMP here left in clear.
    let router = Capture::start(&region.wan, "c0", Direction::Both, "icmp", &wire)
        .expect("capture on the router");
    let file = results("paths-fragments-lan.pcap");
    let lan = Capture::start(
        &region.lan,
        "eth0",
        Direction::In,
        &format!("ip src {}", DC1.host),
        &file,
    )
    .expect("capture on the LAN host");
    let probes: Vec<Vec<u8>> = (0..PROBES)
        .map(|i| {
            let inner = udp_in_ipv4(
                &Ipv4::new(DC1.host.octets(), LAN_HOST.octets(), 0)
                    .id(PROBE_ID + i)
                    .frag_off(0),
                4000,
                4001,
                &[0x5a; PROBE_BYTES],
            );
            packet::gre(0, 0x0800, &[], &inner)
        })
        .collect();
    region
        .dc(1)
        .send_gre_fragments(&probes, FRAGMENT, 0x4400)
        .expect("DC1 sends outer fragments");
    std::thread::sleep(Duration::from_secs(1));
    lan.stop().expect("capture");
    let clear_icmp = router.stop().expect("capture");
    let after = status(region);
    let blocked = xfrm_out_blocked(region) - blocked_before;
    let to_stack = wan_rx(&after, Outcome::OuterFragmentToStack)
        - wan_rx(&before, Outcome::OuterFragmentToStack);
    let r = &after.datapath.reassembled;
    let delivered = r.delivered_packets - before.datapath.reassembled.delivered_packets;
    // Per inner ID, the payload bytes of its fragments at the LAN host.
    let mut arrived = std::collections::BTreeMap::<u16, usize>::new();
    for f in capture::frames(&file).expect("pcap") {
        let ip = &f[14..];
        let hlen = usize::from(ip[0] & 0x0f) * 4;
        let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        *arrived
            .entry(u16::from_be_bytes([ip[4], ip[5]]))
            .or_default() += len - hlen;
    }
    eprintln!(
        "MEASURE outer GRE fragments: {PROBES} DF=0 GRE packets of {} B from DC1 in \
         fragments of {FRAGMENT} B: wan_rx left {to_stack} fragments to the kernel, the agent \
         delivered {delivered} reassembled datagrams ({} B in all), refused {:?}; at the LAN \
         host, bytes per inner ID: {arrived:?}; XFRM block policies stopped {blocked} packets \
         meanwhile (ip_gre's port unreachable); ICMP on the router's CPE link: {}",
        PROBE_BYTES + 28 + 4,
        r.delivered_bytes,
        r.refused,
        clear_icmp.lines.len()
    );
    assert_eq!(
        delivered,
        u64::from(PROBES),
        "verdicts {:?}\nDC1: {}\n{}",
        after.datapath.verdicts,
        region.dc(1).ns.sh("ip -s xfrm state").unwrap_or_default(),
        region.logs(30)
    );
    assert!(to_stack >= 3 * delivered, "fragments {to_stack}");
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    for i in 0..PROBES {
        assert_eq!(
            arrived.get(&(PROBE_ID + i)),
            Some(&(PROBE_BYTES + 8)),
            "inner datagram {i} at the LAN host"
        );
    }
    assert!(
        clear_icmp.lines.is_empty(),
        "ICMP in clear on the WAN: {:?}",
        clear_icmp.lines
    );
    let text = region.agent_text(&["status"]);
    assert!(
        text.contains(&format!(
            "reassembled outer GRE: delivered {} pkts",
            r.delivered_packets
        )),
        "{text}"
    );
}

/// The negative control: the router spoofs clear GRE fragments "from DC1" carrying a UDP
/// datagram for the LAN host. `vc_wan_rx` drops them (`no_secpath`), nothing reaches the LAN
/// host, and the agent delivers nothing.
fn clear_fragments_are_not(region: &Region) {
    let before = status(region);
    let inner = udp_in_ipv4(
        &Ipv4::new(DC1.host.octets(), LAN_HOST.octets(), 0).id(0x5151),
        4000,
        4001,
        &[0x5a; 2000],
    );
    let gre = packet::gre(0, 0x0800, &[], &inner);
    let cut = 1200;
    let outer = |frag_off: u16| {
        Ipv4::new(DC1.gre.octets(), CPE_PUBLIC.octets(), packet::IPPROTO_GRE)
            .id(0x7777)
            .frag_off(frag_off)
    };
    let fragments = vec![
        outer(0x2000).packet(&gre[..cut]),
        outer(u16::try_from(cut / 8).expect("offset")).packet(&gre[cut..]),
    ];
    let file = results("paths-clear-fragments-lan.pcap");
    let lan = Capture::start(&region.lan, "eth0", Direction::In, "udp", &file)
        .expect("capture on the LAN host");
    region
        .wan
        .run_in(move || {
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
                .expect("raw socket");
            let to = SockAddr::from(SocketAddrV4::new(CPE_PUBLIC, 0));
            for f in &fragments {
                socket.send_to(f, &to).expect("send a fragment");
            }
        })
        .expect("thread in the router");
    std::thread::sleep(Duration::from_millis(500));
    let seen = lan.stop().expect("capture");
    let after = status(region);
    let no_secpath = wan_rx(&after, DropReason::NoSecpath) - wan_rx(&before, DropReason::NoSecpath);
    eprintln!(
        "MEASURE clear GRE fragments (negative control): 2 sent by the router, no_secpath +{no_secpath}, \
         delivered +{}, UDP at the LAN host {}",
        after.datapath.reassembled.delivered_packets
            - before.datapath.reassembled.delivered_packets,
        seen.lines.len()
    );
    assert_eq!(no_secpath, 2);
    assert!(seen.lines.is_empty(), "{:?}", seen.lines);
    assert_eq!(
        after.datapath.reassembled, before.datapath.reassembled,
        "the agent saw a clear datagram"
    );
}

/// What the CPE offers first and the DCs refuse: AES-CBC with SHA-512 costs 24 bytes more
/// than AES-GCM, so on a 1500-byte path it would leave 1398, below the configured 1400.
const COSTLIER_ESP: &str = "aes256-sha512";

/// Tunnel A's MTU is first that of the AES-GCM SA the DC picked, not of the costlier
/// proposal the CPE offered first. Then the path toward DC1 shrinks to 1300 (the router's
/// link to it); the router
/// answers the CPE's larger ESP packets (DF copied from the LAN's TCP) with fragmentation
/// needed. The agent's ICMP watch wakes the follower, which applies the path MTU the kernel
/// learned: tunnel A's MTU drops to what 1300 leaves after ESP and GRE within a second of the
/// transfer's start, the LAN host learns it from the CPE's own fragmentation-needed, and the
/// transfer completes.
fn path_mtu_follows_fragmentation_needed(region: &Region) {
    let before = interface_mtu(region, &DC1);
    let s = status(region);
    let child = tunnel(&s, &DC1)
        .ipsec
        .as_ref()
        .and_then(|i| i.child.as_ref());
    assert!(
        child.is_some_and(|c| c.proposal.starts_with("AES_GCM_16")),
        "the DC picked AES-GCM: {child:?}"
    );
    // The SA's transform, not the first offered: 1500 leaves 1422 inside AES-GCM, capped by
    // the configured 1400 (the costlier one would have left 1398).
    assert_eq!(before, 1400, "tunnel A's MTU with its AES-GCM SA");
    let log_before = agent_log(region).len();
    let server = region
        .dc(1)
        .ns
        .spawn(
            "iperf3",
            &["-s", "-1", "-B", &DC1.host.to_string(), "-p", "5201"],
        )
        .expect("iperf3 server in DC1");
    std::thread::sleep(Duration::from_millis(500));
    region
        .wan
        .sh("ip link set d1 mtu 1300")
        .expect("the router's link to DC1 at 1300");
    // Only the router's side: with DC1's own link at 1300 too, DC1's TCP would advertise an
    // MSS that fits the path, and the CPE's ESP would never be too big.
    let esp_file = results("paths-mtu-router-d1.pcap");
    let esp = Capture::start(&region.wan, "d1", Direction::Both, "esp or icmp", &esp_file)
        .expect("capture on the router's link to DC1");
    let t = Instant::now();
    let client = iperf3_client(region, DC1.host);
    let lowered = wait_for(Duration::from_secs(10), "tunnel A's MTU to drop", || {
        (interface_mtu(region, &DC1) < before).then(|| t.elapsed())
    });
    let out = client.wait_with_output().expect("iperf3 client");
    let transfer = t.elapsed();
    drop(server);
    esp.stop().expect("capture");
    eprintln!("path MTU phase: {}", esp_on_the_narrow_link(&esp_file));
    let after = interface_mtu(region, &DC1);
    let s = status(region);
    let map_mtu = tunnel(&s, &DC1).counters.mtu;
    let path = region
        .cpe
        .sh(&format!("ip route get {}", DC1.ipsec))
        .unwrap_or_default();
    // From the ICMP's arrival (the agent logs it as it wakes) to the MTU applied, both on the
    // agent's clock.
    let (event, reaction) = path_mtu_reaction(region, log_before);
    eprintln!(
        "MEASURE path MTU 1300 toward DC1: tunnel A's MTU {before} → {after} (map {map_mtu}) \
         {reaction:?} s after the router's fragmentation needed reached the agent, {lowered:?} \
         after the LAN transfer started; 4 MiB over TCP in {transfer:?} ({}); the kernel: {}; \
         the agent: {}",
        if out.status.success() {
            "completed"
        } else {
            "FAILED"
        },
        path.lines().collect::<Vec<_>>().join(" "),
        event.as_deref().unwrap_or("no event logged")
    );
    region
        .wan
        .sh("ip link set d1 mtu 1500")
        .expect("the router's link back to 1500");
    lowered.unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let reaction = reaction.expect("the agent logged the event and the MTU it applied");
    assert!(
        (0.0..1.0).contains(&reaction),
        "tunnel A's MTU followed {reaction} s after the event"
    );
    // 1300 − IPv4 20 − ESP 8 − IV 8 − ICV 16 = 1248, a multiple of 4; − trailer 2 − GRE 24.
    assert_eq!(after, 1222);
    assert_eq!(map_mtu, 1222);
    assert!(event.is_some(), "the ICMP watch logged nothing");
    assert!(
        out.status.success(),
        "the LAN transfer did not complete: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `iperf3 -c HOST -n 4M` on the LAN host, at most 60 s.
fn iperf3_client(region: &Region, host: std::net::Ipv4Addr) -> std::process::Child {
    region
        .lan
        .command("timeout")
        .args([
            "60",
            "iperf3",
            "-c",
            &host.to_string(),
            "-p",
            "5201",
            "-n",
            "4M",
            "--connect-timeout",
            "5000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("iperf3 client on the LAN host")
}

/// What the CPE's ESP looked like on the router's narrow link: how many, the largest (bytes,
/// DF), how many with DF, and the ICMP there.
fn esp_on_the_narrow_link(file: &Path) -> String {
    let frames = capture::frames(file).expect("pcap");
    let esp_df: Vec<(usize, bool)> = frames
        .iter()
        .map(|f| &f[14..])
        .filter(|ip| ip[9] == 50 && ip[12..16] == CPE_PUBLIC.octets())
        .map(|ip| {
            (
                usize::from(u16::from_be_bytes([ip[2], ip[3]])),
                ip[6] & 0x40 != 0,
            )
        })
        .collect();
    format!(
        "{} ESP packets from the CPE on the router's link to DC1, largest {:?} (bytes, DF), {} \
         with DF; ICMP there: {}",
        esp_df.len(),
        esp_df.iter().max(),
        esp_df.iter().filter(|(_, df)| *df).count(),
        frames.iter().filter(|f| f[14 + 9] == 1).count()
    )
}

/// The router drops ESP between the CPE and `dc` (both ways) while `cut` lasts.
fn drop_esp(region: &Region, dc: &DcPlan) {
    region
        .wan
        .sh(&format!(
            "nft -f - <<EOF
table ip vc_cut {{
  chain forward {{
    type filter hook forward priority 0;
    ip saddr {CPE_PUBLIC} ip daddr {dc} ip protocol esp drop
    ip saddr {dc} ip daddr {CPE_PUBLIC} ip protocol esp drop
  }}
}}
EOF",
            dc = dc.ipsec
        ))
        .expect("the router drops ESP");
}

fn heal(region: &Region) {
    region
        .wan
        .sh("nft delete table ip vc_cut")
        .expect("the router passes everything again");
}

/// What the liveness judge allows before it calls a tunnel dead: `keepalive_retries` (3 in
/// the lab) intervals without a reply.
fn dead_interval() -> Duration {
    Duration::from_secs(u64::from(KEEPALIVE_INTERVAL_S) * 3)
}

/// The bound a move is held to: the dead interval (the judge times it from the last reply the
/// datapath dated, which came before the cut), plus a second for the route's change to reach
/// the kernel and the test's `ip route get` to see it under TCG. The clock starts only once
/// `nft` returned, after the cut took effect. The measured value is printed beside the dead
/// interval.
fn move_bound() -> Duration {
    dead_interval() + Duration::from_secs(1)
}

/// A WAN-path cut: the router drops ESP to and from DC2 (IKE still passes, so the SAs stay
/// up). Only the keepalives can tell: DC2's /25 moves to tunnel A within the dead interval,
/// and back on recovery, when the LAN reaches DC2's host again. (During the cut the lab's
/// DC2 still routes its replies into its tunnel: its BGP session outlives the cut until the
/// hold time, and its keepalive sender is a probe that steers nothing, unlike a head end's.)
fn wan_cut_moves_the_dc_prefix(region: &Region) {
    // From the moment the rules are in place (nft itself takes a second or more under TCG).
    drop_esp(region, &DC2);
    let t = Instant::now();
    let moved = region
        .wait_route(DC2.host, "vc-dc1", Duration::from_secs(30))
        .map(|_| t.elapsed());
    let (reached, _) = Region::ping(&region.lan, DC2.host, 1);
    let s = status(region);
    let b = tunnel(&s, &DC2).keepalive.clone();
    let t_back = Instant::now();
    heal(region);
    let back = region
        .wait_route(DC2.host, "vc-dc2", Duration::from_mins(1))
        .map(|_| t_back.elapsed());
    let (reached_back, _) = Region::ping(&region.lan, DC2.host, 3);
    eprintln!(
        "MEASURE WAN cut (ESP to/from DC2 dropped): DC2's /25 via tunnel A after {moved:?} \
         (keepalive interval {KEEPALIVE_INTERVAL_S} s × 3 retries = {:?}); LAN → DC2's host \
         meanwhile: {reached}; tunnel B alive {} missed {}; healed → back via tunnel B after \
         {back:?}, LAN → DC2's host: {reached_back}",
        dead_interval(),
        b.alive,
        b.missed
    );
    let moved = moved.unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    assert!(moved <= move_bound(), "moved after {moved:?}");
    assert!(!b.alive, "{b:?}");
    back.unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    assert!(
        reached_back,
        "the LAN does not reach DC2's host after the cut healed"
    );
}

/// SA deletion: DC2 deletes its IKE SA (and with it the child) while the router drops IKE
/// from the CPE to DC2, so the CPE cannot make new ones for a while. The CPE hears the DELETE;
/// the /25 moves at once (charon's down events act without waiting for missed keepalives),
/// well within the dead interval. Meanwhile nothing counts as a keepalive heard on tunnel B:
/// with no SA nothing is decrypted, and GRE in clear is refused (fail-closed). Once IKE passes
/// again, the CPE's retries bring the tunnel back, and it stays: the keepalives that could not
/// flow without an SA were no misses.
fn ike_sa_deletion_moves_the_dc_prefix(region: &Region) {
    region
        .wan
        .sh(&format!(
            "nft -f - <<EOF
table ip vc_cut {{
  chain forward {{
    type filter hook forward priority 0;
    ip saddr {CPE_PUBLIC} ip daddr {dc} udp dport {{ 500, 4500 }} drop
  }}
}}
EOF",
            dc = DC2.ipsec
        ))
        .expect("the router drops IKE from the CPE to DC2");
    let log_before = agent_log(region).len();
    let t = Instant::now();
    // `--force`: DC2 sends its DELETE and drops the SA at once, as a head end clearing its
    // SAs does. Without it swanctl waits for the answer the router drops (charon's
    // retransmits, about 24 s), and the time measured would be swanctl's.
    region
        .dc(2)
        .charon
        .swanctl(&["--terminate", "--ike", "dc2", "--force"])
        .expect("DC2 deletes its IKE SA");
    let deleted = t.elapsed();
    let moved = region
        .wait_route(DC2.host, "vc-dc1", Duration::from_secs(30))
        .map(|_| t.elapsed());
    let heard = |s: &AgentStatus| {
        let k = &tunnel(s, &DC2).keepalive;
        k.replies + k.reflected
    };
    let before = status(region);
    std::thread::sleep(Duration::from_secs(2 * u64::from(KEEPALIVE_INTERVAL_S)));
    let during = status(region);
    let t_back = Instant::now();
    heal(region);
    let back = region
        .wait_route(DC2.host, "vc-dc2", Duration::from_mins(2))
        .map(|_| t_back.elapsed());
    let (reached, _) = Region::ping(&region.lan, DC2.host, 3);
    // Two intervals more, in which keepalives flow over the new SA.
    std::thread::sleep(Duration::from_secs(2 * u64::from(KEEPALIVE_INTERVAL_S)));
    let after = status(region);
    let log = agent_log(region);
    let delete = log[log_before..]
        .lines()
        .find(|l| l.contains("received DELETE for IKE_SA vc-b"))
        .map(str::to_string);
    // The outage (several intervals) took the tunnel down by its SA; the silence it caused is
    // no keepalive miss, so the SA's return is not followed by a keepalive "down" (a flap).
    let keepalive_downs: Vec<&str> = log[log_before..]
        .lines()
        .filter(|l| l.contains("keepalives") && l.contains("tunnel=B") && l.contains("WentDown"))
        .collect();
    eprintln!(
        "MEASURE IKE SA deleted by DC2 (IKE from the CPE dropped meanwhile): swanctl returned \
         after {deleted:?}; DC2's /25 via tunnel A after {moved:?} (dead interval {:?}); \
         keepalives heard on tunnel B with no SA: {} → {}, no_secpath +{}; IKE let through → \
         back via tunnel B after {back:?}; LAN → DC2's host: {reached}; the agent: {}",
        dead_interval(),
        heard(&before),
        heard(&during),
        wan_rx(&during, DropReason::NoSecpath) - wan_rx(&before, DropReason::NoSecpath),
        delete.as_deref().unwrap_or("no DELETE logged")
    );
    assert!(delete.is_some(), "the CPE never heard DC2's DELETE");
    let moved = moved.unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    // Charon's event, not missed keepalives, moves it: within the dead interval.
    assert!(moved <= dead_interval(), "moved after {moved:?}");
    assert_eq!(
        heard(&during),
        heard(&before),
        "a keepalive counted as heard on a tunnel without an SA"
    );
    back.unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    assert!(reached, "the LAN does not reach DC2's host after recovery");
    assert!(
        keepalive_downs.is_empty(),
        "the SA's absence counted as missed keepalives: {keepalive_downs:?}"
    );
    let b = &tunnel(&after, &DC2).keepalive;
    assert!(b.alive && b.missed == 0, "{b:?}");
}
