//! `cargo run -p pglookout-sim --example sim -- SEED N` runs a campaign and prints the report;
//! `... -- SEED replay 'SCHEDULE'` replays one schedule and prints its trace;
//! `... -- SCHEDULE_SEED shrink` shrinks the schedule drawn from that seed.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    if args.get(2).map(String::as_str) == Some("shrink") {
        let sched = pglookout_sim::schedule::generate(seed);
        match pglookout_sim::shrink::shrink(seed, &sched) {
            Some(f) => println!("{}", f.render()),
            None => println!("schedule {seed} does not fail: {sched}"),
        }
        return std::process::ExitCode::SUCCESS;
    }
    if args.get(2).map(String::as_str) == Some("replay") {
        let text = args.get(3).cloned().unwrap_or_default();
        match pglookout_sim::replay(seed, &text) {
            Ok(o) => {
                for l in &o.trace {
                    println!("{l}");
                }
                println!("events {}, violation: {:?}", o.events, o.violation);
                return std::process::ExitCode::from(u8::from(o.violation.is_some()));
            }
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let r = pglookout_sim::run_many(seed, n);
    for (s, v) in r.failures.iter().take(20) {
        println!("seed {s}: {v}");
    }
    if let Some(f) = &r.shortest_failing {
        println!("{}", f.render());
    }
    println!(
        "{:.1} schedules/s, {} events, {} failovers, {} promotions, {} fences, {} waived, by rule {:?}, errors {:?}",
        r.schedules_per_sec, r.events, r.failovers, r.promotions, r.fences, r.waived, r.by_rule, r.errors
    );
    println!("{}", r.summary());
    std::process::ExitCode::from(u8::from(r.violations > 0))
}
