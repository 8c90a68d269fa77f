//! The namespace guard creates, connects and removes namespaces.
use std::process::Command;

use vc_testkit::{NetNs, privileged, veth};

#[test]
fn namespaces_connect_and_disappear() {
    if !privileged("namespaces_connect_and_disappear") {
        return;
    }
    let name;
    {
        let a = NetNs::new("kit").expect("netns a");
        let b = NetNs::new("kit").expect("netns b");
        name = a.name().to_string();
        veth(&a, "kita", &b, "kitb").expect("veth");
        a.ip(&["addr", "add", "192.0.2.1/24", "dev", "kita"])
            .expect("addr a");
        b.ip(&["addr", "add", "192.0.2.2/24", "dev", "kitb"])
            .expect("addr b");
        a.sh("ping -c1 -W2 192.0.2.2")
            .expect("ping across the veth");
        let _sleeper = b.spawn("sleep", &["60"]).expect("daemon");
        let inside = a
            .run_in(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
            .unwrap();
        assert!(
            inside.contains("kita"),
            "run_in must see the namespace's devices"
        );
    }
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "{name} must be gone after drop"
    );
}
