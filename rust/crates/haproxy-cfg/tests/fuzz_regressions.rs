//! Replays every input kept under rust/fuzz/regressions/ (found by `cargo fuzz run engine`) and the
//! seeds the fuzzer starts from, through the same checks as the fuzz target.

mod support {
    pub mod invariants;
}

use std::fs;
use std::path::Path;

#[test]
fn every_kept_fuzz_input_passes_the_engine_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|ext| ext == "cfg") {
            let bytes = fs::read(&path).expect("regression input is readable");
            let text = String::from_utf8(bytes).expect("regression inputs are UTF-8");
            support::invariants::check(&text);
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs found in {}",
        dir.display()
    );
}
