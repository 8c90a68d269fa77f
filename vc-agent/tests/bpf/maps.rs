use std::collections::BTreeSet;

use vc_agent::datapath::load;

/// `#[map]` names each map after its static and takes no constant, so the BPF side cannot
/// use `vc_common::maps`: this keeps the two from drifting apart.
#[test]
fn the_object_holds_exactly_the_maps_vc_common_names() {
    if !vc_testkit::privileged("the_object_holds_exactly_the_maps_vc_common_names") {
        return;
    }
    let ebpf = load(&[]).unwrap_or_else(|e| panic!("{e:?}"));
    let in_object: BTreeSet<&str> = ebpf.maps().map(|(name, _)| name).collect();
    let named: BTreeSet<&str> = vc_common::maps::ALL.into_iter().collect();
    assert_eq!(
        in_object, named,
        "maps in the BPF object, and vc_common::maps::ALL"
    );
}
