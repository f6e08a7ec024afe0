//! Finds a Go `concurrent map writes` crash by searching seeds, then shows how to replay it.
//!
//! The program: two controllers, each with one worker, clean up their resources and look up
//! images through a shared package-level map without a lock, the shape of submariner-operator's
//! `logIfChanged` (submariner-io/submariner#2872; simplified here, the faithful model belongs to
//! the scenarios crate). Only some schedules overlap two writes, so only some seeds crash.
//!
//! ```text
//! cargo run --release -p sim-core --example find_map_crash                 # search seeds 0..
//! cargo run --release -p sim-core --example find_map_crash -- --seed 17    # replay one seed
//! cargo run --release -p sim-core --example find_map_crash -- --schedule target/kdst/find_map_crash.schedule
//! ```
//!
//! Exit codes: 0 when the search found the crash or a replay ran; 1 when the search found
//! nothing within its budget; 2 for bad input.
#![allow(clippy::disallowed_methods)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sim_core::{
    GoMap, Outcome, Replay, Schedule, Simulation, enter, event, random_duration, sleep, spawn,
    spawn_daemon,
};

const TEST: &str = "find_map_crash";
const SCHEDULE_PATH: &str = "target/kdst/find_map_crash.schedule";
const SEEDS_DEFAULT: u64 = 10_000;

/// `logIfChanged`: read the previous value, log if it changed, write the new one; no lock.
async fn log_if_changed(logged: &GoMap<String, String>, component: &str, image: String) {
    let _frame = enter("logIfChanged");
    let previous = logged.get(&component.to_string()).await;
    if previous.as_ref() != Some(&image) {
        event(format!("image for {component}: {image}"));
    }
    logged.insert(component.to_string(), image).await;
}

/// One controller's clean-up reconcile: a few image look-ups, requeued every 500 ms.
async fn cleanup_worker(logged: GoMap<String, String>, controller: &'static str, images: u32) {
    let _frame = enter(format!("{controller}.reconcile"));
    for round in 0..3 {
        let _lookup = enter("GetImagePath");
        for index in 0..images {
            let component = format!("{controller}-component-{index}");
            log_if_changed(&logged, &component, format!("quay.io/submariner/{index}:{round}"))
                .await;
        }
        sleep(Duration::from_millis(500)).await;
    }
}

fn program() {
    let logged: GoMap<String, String> = GoMap::new("loggedImages");
    spawn_daemon("api-server", async {
        loop {
            sleep(random_duration(Duration::from_millis(1), Duration::from_millis(20))).await;
        }
    });
    spawn("submariner-controller", cleanup_worker(logged.clone(), "submariner", 3));
    spawn("servicediscovery-controller", cleanup_worker(logged, "servicediscovery", 2));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Command::Search { seeds }) => search(seeds),
        Ok(Command::Seed(seed)) => replay(Simulation::default(), seed, &format!("seed {seed}")),
        Ok(Command::Schedule(path)) => match load_schedule(&path) {
            Ok(schedule) => {
                let seed = schedule.seed;
                let sim = Simulation::default().with_strategy(Replay::new(&schedule));
                replay(sim, seed, &format!("schedule {path}"))
            }
            Err(message) => usage_error(&message),
        },
        Err(message) => usage_error(&message),
    }
}

enum Command {
    Search { seeds: u64 },
    Seed(u64),
    Schedule(String),
}

fn parse(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Ok(Command::Search { seeds: SEEDS_DEFAULT }),
        [flag, value] if flag == "--seeds" => {
            Ok(Command::Search { seeds: number(value, "--seeds")? })
        }
        [flag, value] if flag == "--seed" => Ok(Command::Seed(number(value, "--seed")?)),
        [flag, value] if flag == "--schedule" => Ok(Command::Schedule(value.clone())),
        _ => Err(format!(
            "unexpected arguments `{}`; use --seeds N, --seed N or --schedule FILE",
            args.join(" ")
        )),
    }
}

fn number(text: &str, flag: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("{flag} takes a non-negative integer, not `{text}`"))
}

fn load_schedule(path: &str) -> Result<Schedule, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let schedule = Schedule::decode(&text).map_err(|error| format!("{path}: {error}"))?;
    if schedule.test != TEST {
        return Err(format!("{path} is a schedule for `{}`, not `{TEST}`", schedule.test));
    }
    Ok(schedule)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn search(seeds: u64) -> ExitCode {
    let mut sim = Simulation::default();
    let started = Instant::now();
    let mut steps = 0u64;
    for seed in 0..seeds {
        let outcome = sim.run(seed, program);
        steps += sim.trace().len() as u64;
        if let Outcome::Failed(failure) = outcome {
            let elapsed = started.elapsed();
            println!(
                "searched {} seeds ({steps} steps) in {:.1} ms with the random strategy",
                seed + 1,
                elapsed.as_secs_f64() * 1e3
            );
            println!("seed {seed} fails:\n\n{failure}\n");
            println!("last events of each task involved:");
            for &task in failure.task.iter().chain(&failure.involved) {
                for line in sim.trace().last_events_of(task, 4) {
                    println!("  {line}");
                }
            }
            let schedule = sim.schedule(TEST, &[]);
            println!("\nreplay seed: {seed}");
            println!("  cargo run --release -p sim-core --example {TEST} -- --seed {seed}");
            match save(&schedule) {
                Ok(()) => println!(
                    "  cargo run --release -p sim-core --example {TEST} -- --schedule {SCHEDULE_PATH}"
                ),
                Err(error) => eprintln!("warning: could not save {SCHEDULE_PATH}: {error}"),
            }
            return ExitCode::SUCCESS;
        }
    }
    println!(
        "no failure in {seeds} seeds ({steps} steps, {:.1} ms) with the random strategy",
        started.elapsed().as_secs_f64() * 1e3
    );
    ExitCode::from(1)
}

fn save(schedule: &Schedule) -> std::io::Result<()> {
    std::fs::create_dir_all("target/kdst")?;
    std::fs::write(SCHEDULE_PATH, schedule.encode())
}

fn replay(mut sim: Simulation, seed: u64, what: &str) -> ExitCode {
    let outcome = sim.run(seed, program);
    print!("{}", sim.trace().render());
    match outcome.failure() {
        Some(failure) => println!("replayed {what}: {} at step {}", failure.message, failure.step),
        None => println!("replayed {what}: {outcome}"),
    }
    ExitCode::SUCCESS
}
