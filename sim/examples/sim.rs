//! `cargo run -p pglookout-sim --example sim -- SCHEDULE_SEED` shrinks the schedule drawn from
//! that seed and prints it with its replay command. Campaigns and replays are `pglab sim`.

fn main() -> std::process::ExitCode {
    let Some(seed) = std::env::args().nth(1).and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: sim SCHEDULE_SEED");
        return std::process::ExitCode::from(2);
    };
    let sched = pglookout_sim::schedule::generate(seed);
    match pglookout_sim::shrink::shrink(seed, &sched) {
        Some(f) => println!("{}", f.render()),
        None => println!("schedule {seed} does not fail: {sched}"),
    }
    std::process::ExitCode::SUCCESS
}
