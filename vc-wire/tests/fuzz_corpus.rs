//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/*`) through the same checks the fuzz
//! targets run, on stable: every input that once found new behaviour (or a crash, once fixed)
//! stays a regression test.
use std::{fs, path::Path};

use vc_wire::{bgp, datagram_fuzz, vici};

#[test]
fn the_kept_fuzz_corpus_passes_every_decoder_check() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, check) in bgp::packet::fuzz::TARGETS
        .into_iter()
        .chain(vici::fuzz::TARGETS)
        .chain(datagram_fuzz::TARGETS)
    {
        let dir = corpus.join(target);
        let mut n = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{target}: {} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "{target}: empty corpus in {}", dir.display());
        println!("{target}: {n} inputs");
    }
}
