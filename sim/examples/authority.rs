//! `cargo run --release -p pglookout-sim --example authority -- CAMPAIGN_SEED N [classic]
//! [--sync off|on|strict|mixed]` runs N schedules of issue 18's draws (`schedule::generate_authority`; `classic`: the CI
//! draws) and prints the violations by rule, every failing schedule seed, and for every rule
//! its failure with the fewest faults, shrunk, with its replay command (`pglab sim --seed S
//! --replay '...'`, or `authority replay SEED '...'` for the whole trace). `authority shrink
//! SEED ['SCHEDULE']` shrinks one schedule: the draw of that seed, or the one given.

use pglookout_sim::schedule::{Draws, SyncDraw};

fn main() -> std::process::ExitCode {
    let mut all: Vec<String> = std::env::args().skip(1).collect();
    // `--sync MODE` anywhere (`synchronous_mode` of the campaign's schedules; off by default)
    let mut sync = SyncDraw::Off;
    if let Some(i) = all.iter().position(|a| a == "--sync") {
        match all.get(i + 1).map(|m| SyncDraw::parse(m)) {
            Some(Ok(s)) => sync = s,
            Some(Err(e)) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
            None => {
                eprintln!("--sync needs off, on, strict or mixed");
                return std::process::ExitCode::from(2);
            }
        }
        all.drain(i..i + 2);
    }
    let mut args = all.clone().into_iter();
    if (all.len() == 2 || all.len() == 3) && all[0] == "shrink" {
        // `authority shrink SCHEDULE_SEED ['SCHEDULE']`: the authority schedule of that seed (or
        // the one given, run with that seed), shrunk
        let Ok(seed) = all[1].parse::<u64>() else {
            eprintln!("usage: authority shrink SCHEDULE_SEED ['SCHEDULE']");
            return std::process::ExitCode::from(2);
        };
        let sched = match all.get(2).map(|t| pglookout_sim::schedule::Schedule::parse(t)) {
            None => sync.apply(seed, pglookout_sim::schedule::generate_authority(seed)),
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
        };
        match pglookout_sim::shrink::shrink(seed, &sched) {
            Some(f) => {
                let mut text = f.render();
                text.truncate(text.find("trace:").unwrap_or(text.len()));
                print!("{text}");
            }
            None => println!("schedule {seed} does not fail: {sched}"),
        }
        return std::process::ExitCode::SUCCESS;
    }
    if all.len() == 3 && all[0] == "replay" {
        // `authority replay SEED 'SCHEDULE'`: the whole trace, as `pglab sim --replay` prints it
        let o = match all[1]
            .parse()
            .map_err(|e| format!("{e}"))
            .and_then(|s| pglookout_sim::replay(s, &all[2]))
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(2);
            }
        };
        for line in &o.trace {
            println!("{line}");
        }
        match &o.violation {
            Some(v) => println!("violation: {v}"),
            None => println!("no violation"),
        }
        println!("waived: {:?}\nlost writes (split brain, async): {:?}", o.waived, o.lost);
        return std::process::ExitCode::SUCCESS;
    }
    let (Some(seed), Some(n)) = (
        args.next().and_then(|s| s.parse::<u64>().ok()),
        args.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: authority CAMPAIGN_SEED N [classic] [--sync off|on|strict|mixed]");
        return std::process::ExitCode::from(2);
    };
    let draws = if args.next().as_deref() == Some("classic") {
        Draws::Classic
    } else {
        Draws::Authority
    };
    let mut report = pglookout_sim::run_many_sync(seed, n, draws, sync);
    for e in &report.errors {
        println!("config error: {e}");
    }
    for (s, v) in &report.failures {
        println!("failing: seed {s}: {v}\n  drawn as: {}", report.generate(*s));
    }
    pglookout_sim::shrink_each_rule(&mut report);
    for (rule, f) in &report.shortest_by_rule {
        println!("\n=== {rule}: shortest failure, shrunk ===");
        let mut text = f.render();
        // the violation and the replay; the whole trace comes with the replay
        text.truncate(text.find("trace:").unwrap_or(text.len()));
        print!("{text}");
    }
    println!(
        "\n{:.0} schedules/s ({:.1} s), {} events, {} failovers, {} promotions, {} fences, {} waived, {} writes lost asynchronously",
        report.schedules_per_sec,
        report.seconds,
        report.events,
        report.failovers,
        report.promotions,
        report.fences,
        report.waived,
        report.lost_async
    );
    if let Some(line) = report.sync_summary() {
        println!("{line}");
    }
    println!("by rule: {:?}", report.by_rule);
    println!("{}", report.summary());
    std::process::ExitCode::SUCCESS
}
