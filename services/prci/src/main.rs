//! The `prci` command: `check` (what will CI say about my branch?), `replay` (agreement with full-tree scans), `run`, and `dead-letters` (what the pipeline gave up on).

use clap::{Parser, Subcommand};
use pipeline::config::MasterSettings;
use pipeline::Settings;
use prci::check::{self, CheckError, CheckRequest, Context};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "prci",
    version,
    about = "Pull-request QA for ebuild repositories: which issues does a change introduce, and which does it fix?"
)]
struct Cli {
    /// Configuration file (TOML); `PRCI__SECTION__KEY` variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a change of a local repository: HEAD merged onto BASE, scanned incrementally, issues diffed.
    Check {
        /// The repository (a git checkout of an ebuild repository).
        #[arg(long)]
        repo: PathBuf,
        /// The base revision (the branch the change goes to).
        #[arg(long)]
        base: String,
        /// The head revision (the change).
        #[arg(long)]
        head: String,
        /// Print the JSON document instead of a summary.
        #[arg(long)]
        json: bool,
        /// Extra argument for pkgcheck, on both sides (repeatable).
        #[arg(long = "pkgcheck-arg", allow_hyphen_values = true)]
        pkgcheck_args: Vec<String>,
        /// A master repository, NAME=PATH (repeatable), for an overlay.
        #[arg(long = "master")]
        masters: Vec<String>,
    },
    /// Run the pipeline: all five stages in one process (in-process queues without broker.url), or one stage.
    Run {
        /// Run only this stage (poller, regen, checker, differ, publisher): how another host adds consumers.
        #[arg(long)]
        stage: Option<String>,
        /// Single-process mode only: poll once, process everything, print where the reports are, exit.
        #[arg(long)]
        until_idle: bool,
    },
    /// Replay FROM..TO commit by commit; compare each `check` with full-tree scans of both sides.
    Replay {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Print one JSON object per commit.
        #[arg(long)]
        json: bool,
    },
    /// The messages the pipeline gave up on (`<prefix>.<queue>.dead` on RabbitMQ; needs broker.url).
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
}

#[derive(Subcommand)]
enum DeadLettersAction {
    /// Show each dead letter (queue, age, pull request and head when known, reason), leaving all of them in place.
    List {
        /// Only this work queue's dead letters.
        #[arg(long, value_parser = QUEUES)]
        queue: Option<String>,
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back to the queue they died in (confirmed by the broker before each is removed); a body that
    /// is not JSON stays where it is.
    #[command(group(clap::ArgGroup::new("how_many").required(true).args(["all", "count"])))]
    Replay {
        /// Only this work queue's dead letters.
        #[arg(long, value_parser = QUEUES)]
        queue: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        /// At most this many, oldest first.
        #[arg(long)]
        count: Option<usize>,
    },
}

/// The work queues `--queue` names.
const QUEUES: [&str; 4] = ["revisions", "prepared", "scanned", "verdicts"];

fn main() -> ExitCode {
    let cli = Cli::parse();
    pipeline::telemetry::init(if matches!(cli.command, Command::Run { .. }) { "info" } else { "warn" });
    let settings = match load_settings(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("prci: {e}");
            return ExitCode::from(64);
        }
    };
    match cli.command {
        Command::Run { stage, until_idle } => {
            if cli.config.is_none() && std::env::var_os("PRCI__REPOSITORY__URL").is_none() {
                eprintln!("prci: bad configuration: <file>: prci run needs --config FILE (see compose/prci.example.toml)");
                return ExitCode::from(64);
            }
            run_command(settings, stage.as_deref(), until_idle)
        }
        Command::Check { repo, base, head, json, pkgcheck_args, masters } => {
            let masters = match parse_masters(&masters) {
                Ok(m) => m,
                Err(e) => return usage(&e),
            };
            check_command(settings, CheckRequest { repo, base, head, pkgcheck_args, masters }, json)
        }
        Command::Replay { repo, from, to, json } => replay_command(settings, &repo, &from, &to, json),
        Command::DeadLetters { action } => dead_letters_command(&settings, action),
    }
}

/// `prci dead-letters list|replay`: exit 64 without broker.url, 2 when the broker fails, 1 when a replay left some.
fn dead_letters_command(settings: &Settings, action: DeadLettersAction) -> ExitCode {
    use prci::dead_letters::{self, DeadLettersError};
    let fail = |e: DeadLettersError| match e {
        e @ DeadLettersError::Config { .. } => {
            eprintln!("prci: {e}");
            ExitCode::from(64)
        }
        e => usage(&format!("dead-letters: {e}")),
    };
    let prefix = &settings.broker.prefix;
    match action {
        DeadLettersAction::List { queue, json } => {
            let letters = match dead_letters::list(settings, &dead_letters::queues(queue.as_deref())) {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            let now = pipeline::events::now();
            if json {
                let docs: Vec<_> = letters.iter().map(|l| dead_letters::document(l, prefix, now)).collect();
                println!("{}", serde_json::Value::Array(docs));
            } else {
                print!("{}", dead_letters::render(&letters, prefix, now));
            }
            ExitCode::SUCCESS
        }
        DeadLettersAction::Replay { queue, all, count } => {
            let max = if all { None } else { count };
            let done = match dead_letters::replay(settings, &dead_letters::queues(queue.as_deref()), max) {
                Ok(d) => d,
                Err(e) => return fail(e),
            };
            for (letter, why) in &done.kept {
                eprintln!("prci: left in {}: a message of {} bytes: {why}", letter.queue.dead_letter_name(prefix), letter.body.len());
            }
            println!("moved {} dead letter{} back to their work queues", done.moved.len(), if done.moved.len() == 1 { "" } else { "s" });
            if done.kept.is_empty() {
                ExitCode::SUCCESS
            } else {
                println!("left {} in place", done.kept.len());
                ExitCode::from(1)
            }
        }
    }
}

/// `prci run`: the stages until SIGTERM, or until idle.
fn run_command(settings: Settings, stage: Option<&str>, until_idle: bool) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return usage(&format!("cannot start the runtime: {e}")),
    };
    pipeline::runtime::install_metrics();
    let reports = settings.reports.dir.clone();
    match runtime.block_on(prci::run::run(settings, stage, until_idle)) {
        Ok(()) => {
            if until_idle {
                println!("reports: {}", reports.join("index.html").display());
            }
            ExitCode::SUCCESS
        }
        Err(e @ prci::run::RunError::Config { .. }) => {
            eprintln!("prci: {e}");
            ExitCode::from(64)
        }
        Err(e) => usage(&e.to_string()),
    }
}

/// The tools and sandbox `check` and `replay` run with, or the exit code of why there are none (64: configuration).
fn context(settings: Settings) -> Result<Context, ExitCode> {
    Context::new(settings).map_err(|e| match e {
        CheckError::Config(_) => {
            eprintln!("prci: {e}");
            ExitCode::from(64)
        }
        e => usage(&e.to_string()),
    })
}

/// `prci check`: one report, exit code by verdict.
fn check_command(settings: Settings, req: CheckRequest, json: bool) -> ExitCode {
    let ctx = match context(settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = check::run(&ctx, &req);
    sandbox::warm::shutdown();
    match result {
        Ok(checked) => {
            let _ = std::fs::remove_dir_all(&checked.scratch);
            print_report(&checked.report, json);
            ExitCode::from(checked.report.verdict.exit_code() as u8)
        }
        Err(CheckError::Input(msg) | CheckError::Config(msg)) => usage(&msg),
        Err(CheckError::Pipeline(report)) => {
            print_report(&report, json);
            eprintln!("prci: {}", report.reason);
            ExitCode::from(2)
        }
    }
}

/// `prci replay`: each commit of the range against its parent, compared with full scans; exit 1 on a disagreement.
fn replay_command(settings: Settings, repo: &std::path::Path, from: &str, to: &str, json: bool) -> ExitCode {
    let ctx = match context(settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let commits = match prci::replay::commits(repo, from, to) {
        Ok(c) => c,
        Err(e) => return usage(&e.to_string()),
    };
    let mut all_agree = true;
    for commit in commits {
        let replayed = prci::replay::replay_one(&ctx, repo, &commit);
        sandbox::warm::shutdown();
        match replayed {
            Ok(r) => {
                all_agree &= r.agree;
                print_replay(&r, json);
            }
            Err(e) => {
                eprintln!("prci: replay of {commit}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(if all_agree { 0 } else { 1 })
}

fn print_replay(r: &prci::replay::ReplayResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "{} {} new={} fixed={} targets={}{}",
        &r.commit[..10],
        if r.agree { "agree" } else { "DISAGREE" },
        r.check_new,
        r.check_fixed,
        r.targets,
        if r.full { " (full)" } else { "" }
    );
    for (label, list) in [
        ("only in check, new", &r.only_check_new),
        ("only in full scans, new", &r.only_truth_new),
        ("only in check, fixed", &r.only_check_fixed),
        ("only in full scans, fixed", &r.only_truth_fixed),
    ] {
        for id in list {
            println!("    {label}: {id}");
        }
    }
}

/// Load configuration; without a file or `PRCI__WORK__DIR`, `prci` keeps its work in the user's cache dir.
fn load_settings(file: Option<&std::path::Path>) -> Result<Settings, pipeline::ConfigError> {
    let mut s = Settings::load(file)?;
    if file.is_none() && std::env::var_os("PRCI__WORK__DIR").is_none() {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        s.work.dir = cache.join("prci");
    }
    Ok(s)
}

fn parse_masters(specs: &[String]) -> Result<Vec<MasterSettings>, String> {
    specs
        .iter()
        .map(|s| match s.split_once('=') {
            Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                let path = std::fs::canonicalize(path).map_err(|_| format!("--master {s}: {path} does not exist"))?;
                Ok(MasterSettings { name: name.to_owned(), url: path.display().to_string(), branch: None })
            }
            _ => Err(format!("--master {s}: expected NAME=PATH")),
        })
        .collect()
}

fn print_report(report: &findings::CheckReport, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("prci: cannot encode the report: {e}"),
        }
    } else {
        print!("{}", publisher::render_text(report));
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("prci: {msg}");
    ExitCode::from(2)
}
