//! Times parse+render, inventory and a one-server drain on the largest corpus files and a generated
//! 2,000-backend x 50-server config, as ratios against a plain line scan that copies the same text.
//! Run with `cargo bench -p haproxy-cfg`. Without the shared corpus (`$AUTOHEAL_SHARED_DIR/corpus`) it says
//! so in one line and times the project's own long fixture instead.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use haproxy_cfg::{inventory, plan, Desired, Document, Request, Target};

/// Median wall time of `run`, over at least 5 runs and about half a second.
fn median(mut run: impl FnMut()) -> Duration {
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 5
        || (started.elapsed() < Duration::from_millis(500) && samples.len() < 200)
    {
        let start = Instant::now();
        run();
        samples.push(start.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// The baseline: what any line-based tool does at least, i.e. walk the lines and copy them.
fn line_scan_copy(text: &str) -> String {
    let mut copy = String::with_capacity(text.len());
    for line in text.lines() {
        copy.push_str(line);
        copy.push('\n');
    }
    copy
}

fn generated(backends: usize, servers: usize) -> String {
    let mut text = String::from(
        "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 5s\n",
    );
    for b in 0..backends {
        text.push_str(&format!("\nbackend be_{b}\n    balance roundrobin\n"));
        for s in 0..servers {
            text.push_str(&format!(
                "    server srv_{b}_{s} 10.{}.{}.{}:8080 check weight 10\n",
                b / 250,
                b % 250,
                s + 1
            ));
        }
    }
    text
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = Path::new(&std::env::var_os("AUTOHEAL_SHARED_DIR").unwrap_or_default())
        .join("corpus/haproxy-cfg");
    let files: Vec<std::path::PathBuf> = if corpus.is_dir() {
        [
            "wild/Exymat__haproxy-vscode__test_bench_fixtures_large-valid.cfg",
            "wild/frobware__haproxy-hacks__BZ1829779_haproxy.cfg",
            "upstream-tests-conf/test-stats.cfg",
        ]
        .iter()
        .map(|path| corpus.join(path))
        .collect()
    } else {
        println!(
            "shared corpus not found at {}: its largest files are not timed",
            corpus.display()
        );
        vec![manifest.join("tests/fixtures/long.cfg")]
    };
    let mut inputs: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            (name.into_owned(), text)
        })
        .collect();
    inputs.push(("generated 2000x50".to_owned(), generated(2000, 50)));

    println!(
        "{:<58} {:>9} {:>7} {:>10} {:>14} {:>14} {:>14}",
        "file", "bytes", "servers", "baseline", "parse+render", "inventory", "plan drain"
    );
    for (name, text) in &inputs {
        let servers = inventory(text);
        let middle = &servers[servers.len() / 2];
        let request = Request {
            backend: Some(middle.backend.clone()),
            target: Target::Name(middle.name.clone()),
            all_matches: true,
            desired: Desired::Drain,
        };
        let baseline = median(|| {
            black_box(line_scan_copy(black_box(text)));
        });
        let round_trip = median(|| {
            black_box(Document::parse(black_box(text)).render());
        });
        let listing = median(|| {
            black_box(inventory(black_box(text)));
        });
        let drain = median(|| {
            black_box(plan(black_box(text), &request).expect("drain plans"));
        });
        let cell = |d: Duration| {
            format!(
                "{:>6.2}ms {:>5.1}x",
                d.as_secs_f64() * 1e3,
                d.as_secs_f64() / baseline.as_secs_f64()
            )
        };
        println!(
            "{:<58} {:>9} {:>7} {:>8.2}ms {:>14} {:>14} {:>14}",
            name,
            text.len(),
            servers.len(),
            baseline.as_secs_f64() * 1e3,
            cell(round_trip),
            cell(listing),
            cell(drain)
        );
    }
    println!("(median wall time; ratio = time / baseline, the baseline being str::lines() plus a String copy)");
}
