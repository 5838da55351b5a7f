//! The command line: arguments, the operator's language, and one function per command.
//!
//! Every help text comes from the catalogue, so `--help` reads in the operator's language.
//! Commands return an [`Exit`]; `main` turns it into the process exit code:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (warnings allowed) |
//! | 1 | the site's files have errors |
//! | 2 | the command line is wrong (unknown command or option) |
//! | 3 | the command could not do its work (a file could not be written, …) |

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

mod audit;
mod backup;
mod daemon;
pub mod emulate;
mod preview;
mod publish;
mod review;
mod schedule;
mod sms;

use crate::config;
use crate::config::model::ShowMode;
use crate::i18n::{Lang, tr};

/// The outcome of a command, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Problems = 1,
    Usage = 2,
    Failed = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug, Parser)]
#[command(name = "gongkai", version)]
pub struct Args {
    /// Site directory (default: the current directory).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = ".",
        hide_default_value = true
    )]
    pub site: PathBuf,
    /// Language of messages: zh or en (default: from LANG / LC_ALL).
    #[arg(long, global = true, value_name = "LANG")]
    pub lang: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every file of the site and report every problem.
    Validate,
    /// Print the JSON Schemas of the site's files, or write them into a folder.
    Schema {
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// A reference board on a serial device or on MQTT.
    Emulate {
        #[arg(
            long,
            value_name = "PATH",
            required_unless_present = "mqtt",
            conflicts_with = "mqtt"
        )]
        port: Option<PathBuf>,
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::value_parser!(u8).range(1..=254),
            required_unless_present = "mqtt",
            conflicts_with = "mqtt"
        )]
        address: Option<u8>,
        #[arg(long, value_name = "URL", requires = "topic")]
        mqtt: Option<String>,
        #[arg(long, value_name = "TOPIC", requires = "mqtt")]
        topic: Option<String>,
        #[arg(long, value_name = "FILE")]
        profile: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_name = "BAUD")]
        baud: Option<u32>,
    },
    /// Pictures of what a display will show.
    Preview {
        #[arg(value_name = "ITEM")]
        item: Option<String>,
        #[arg(long, value_name = "ID")]
        display: Option<String>,
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        #[arg(long, value_name = "TEXT")]
        text: Option<String>,
        #[arg(long, value_name = "TEXT")]
        title: Option<String>,
        #[arg(long, value_name = "MODE", value_parser = ["page", "scroll", "roll"])]
        mode: Option<String>,
        #[arg(
            long,
            value_name = "DIR",
            default_value = "preview",
            hide_default_value = true
        )]
        out: PathBuf,
        #[arg(long, value_name = "N", default_value_t = 6, hide_default_value = true)]
        scale: u32,
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        lines: bool,
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Show what a display will show, when, and why.
    Plan {
        #[arg(long, value_name = "ID")]
        display: String,
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the next times a crontab expression fires.
    Cron {
        #[arg(value_name = "EXPR")]
        expr: String,
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long, value_name = "N", default_value_t = 10)]
        count: usize,
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
    },
    /// Run the daemon: keep every board current, serve the status page and the control API.
    Run {
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
        log_format: String,
    },
    /// Put an urgent notice on boards through the running daemon, list or end notices.
    Interrupt {
        #[arg(value_name = "TEXT", required_unless_present_any = ["end", "list"])]
        text: Option<String>,
        #[arg(long = "to", value_name = "ID", value_delimiter = ',')]
        to: Vec<String>,
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        #[arg(long)]
        sms: bool,
        #[arg(long, value_name = "ID", conflicts_with_all = ["text", "list"])]
        end: Option<String>,
        #[arg(long, conflicts_with = "text")]
        list: bool,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// What the boards showed, the bulletins sent and the interrupts, over a time range.
    Audit {
        #[arg(long, value_name = "TIME")]
        from: String,
        #[arg(long, value_name = "TIME")]
        to: String,
        #[arg(long, value_name = "ID")]
        display: Option<String>,
        #[arg(long)]
        csv: bool,
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Take an item off every board at once through the running daemon (or put it back).
    Withdraw {
        #[arg(value_name = "ITEM")]
        item: String,
        #[arg(long)]
        restore: bool,
        #[arg(long, value_name = "TEXT", conflicts_with = "restore")]
        reason: Option<String>,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Record a review (三审) of an item through the running daemon, or show where items stand.
    Review {
        #[arg(value_name = "ITEM")]
        item: Option<String>,
        #[arg(long, value_name = "STAGE", requires = "item", requires = "by")]
        stage: Option<String>,
        #[arg(long, value_name = "NAME", requires = "stage")]
        by: Option<String>,
        #[arg(long, conflicts_with_all = ["item", "stage"])]
        list: bool,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Copy the daemon's database and the SMS ledger, consistently, while the daemon runs.
    Backup {
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// Add an item to a playlist file, keeping its comments and formatting.
    Publish {
        #[arg(long, value_name = "ID")]
        playlist: String,
        #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
        title: String,
        #[arg(
            long,
            value_name = "TEXT",
            conflicts_with = "body_file",
            allow_hyphen_values = true
        )]
        body: Option<String>,
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
        #[arg(long, value_name = "CATEGORY")]
        category: String,
        #[arg(long, value_name = "DATE")]
        until: String,
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
        department: Option<String>,
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        #[arg(long, value_name = "COLOR")]
        color: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// SMS bulletins.
    Sms {
        #[command(subcommand)]
        command: SmsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SmsCommand {
    /// Encoding, characters and parts of a text.
    Segments {
        #[arg(value_name = "TEXT")]
        text: String,
    },
    /// The bulletin an item would become.
    Preview {
        #[arg(value_name = "ITEM")]
        item: String,
    },
    /// Send an item's bulletin to its subscribers.
    Send {
        #[arg(value_name = "ITEM")]
        item: String,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        urgent: bool,
        #[arg(long = "group", value_name = "GROUP")]
        group: Vec<String>,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// Where an item's bulletin stands.
    Status {
        #[arg(value_name = "BULLETIN")]
        bulletin: String,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
        #[arg(long)]
        show_numbers: bool,
        #[arg(
            long,
            value_name = "N",
            default_value_t = 50,
            hide_default_value = true
        )]
        limit: usize,
    },
    /// Import subscribers from a CSV file.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// Ask the gateways about deliveries in doubt.
    Reconcile {
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// Cancel what of a bulletin no gateway has been handed yet.
    Cancel {
        #[arg(value_name = "BULLETIN")]
        bulletin: String,
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// List the deliveries in doubt.
    Unknown {
        #[arg(long, value_name = "ITEM")]
        item: Option<String>,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
        #[arg(long)]
        show_numbers: bool,
        #[arg(
            long,
            value_name = "N",
            default_value_t = 50,
            hide_default_value = true
        )]
        limit: usize,
    },
    /// Queue deliveries still in doubt after a reconciliation again.
    Resend {
        #[arg(value_name = "ITEM")]
        item: Option<String>,
        #[arg(long, requires = "by")]
        confirm: bool,
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// One subscriber's consent history.
    Consent {
        #[arg(value_name = "NUMBER")]
        number: String,
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
}

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let env_lang = Lang::from_env(|name| std::env::var(name).ok());
    let lang = match lang_from_args(&argv) {
        None => env_lang,
        Some(Ok(lang)) => lang,
        Some(Err(tag)) => {
            eprintln!("{}", tr(env_lang, "cli.unknown_lang", &[("lang", &tag)]));
            return Exit::Usage.into();
        }
    };
    let command = localized_command(lang);
    let matches = match command.try_get_matches_from(&argv) {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return Exit::Usage.into();
        }
    };
    run(&args, lang).into()
}

/// `--lang zh` or `--lang=zh` anywhere on the command line, read before clap so that `--help`
/// itself comes out in that language. `Err` carries a language the catalogue lacks.
fn lang_from_args(argv: &[std::ffi::OsString]) -> Option<Result<Lang, String>> {
    let mut words = argv.iter().filter_map(|a| a.to_str());
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        let value = match word.strip_prefix("--lang=") {
            Some(value) => value,
            None if word == "--lang" => words.next().unwrap_or(""),
            None => continue,
        };
        return Some(Lang::from_tag(value).ok_or_else(|| value.to_owned()));
    }
    None
}

/// A profile file named on the command line (`--profile FILE`): its problems printed like
/// `validate`'s, a read failure reported with the catalogue message `unreadable_key`.
fn load_profile_file(
    site: &Path,
    path: &Path,
    lang: Lang,
    unreadable_key: &str,
) -> Option<crate::config::model::Profile> {
    match config::load_profile(site, path) {
        Ok((profile, report)) => {
            let _ = write!(std::io::stdout(), "{}", report.render(lang));
            profile
        }
        Err(error) => {
            let (name, reason) = (path.display().to_string(), error.to_string());
            eprintln!(
                "{}",
                tr(
                    lang,
                    unreadable_key,
                    &[("path", &name), ("reason", &reason)]
                )
            );
            None
        }
    }
}

/// Writes `header` and `cells` as columns aligned by display width (a hanzi is two columns),
/// two spaces apart; the last column is written as it is, never padded or cut.
fn write_columns<const N: usize>(
    out: &mut impl std::io::Write,
    header: &[String; N],
    cells: &[[String; N]],
) -> std::io::Result<()> {
    use unicode_width::UnicodeWidthStr;
    let mut widths = [0usize; N];
    for row in std::iter::once(header).chain(cells) {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(N.saturating_sub(1)) {
            *w = (*w).max(cell.width());
        }
    }
    for row in std::iter::once(header).chain(cells) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths).take(N.saturating_sub(1)) {
            line.push_str(cell);
            line.push_str(&" ".repeat(w - cell.width() + 2));
        }
        if let Some(last) = row.last() {
            line.push_str(last);
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Runs one parsed command.
pub fn run(args: &Args, lang: Lang) -> Exit {
    match &args.command {
        Command::Validate => validate(&args.site, lang),
        Command::Schema { write } => schema(write.as_deref(), lang),
        Command::Preview {
            item,
            display,
            profile,
            text,
            title,
            mode,
            out,
            scale,
            strict,
            lines,
            at,
        } => {
            let options = preview::Options {
                item: item.clone(),
                display: display.clone(),
                profile: profile.clone(),
                text: text.clone(),
                title: title.clone(),
                mode: mode.as_deref().map(|m| match m {
                    "scroll" => ShowMode::Scroll,
                    "roll" => ShowMode::Roll,
                    _ => ShowMode::Page,
                }),
                out: out.clone(),
                scale: *scale,
                strict: *strict,
                lines: *lines,
                at: at.clone(),
            };
            preview::run(&args.site, &options, lang)
        }
        Command::Emulate {
            port,
            address,
            profile,
            out,
            baud,
            mqtt,
            topic,
        } => emulate::run(
            &args.site,
            &emulate::Options {
                port: port.clone(),
                address: *address,
                profile: profile.clone(),
                out: out.clone(),
                baud: *baud,
                mqtt: mqtt
                    .clone()
                    .zip(topic.clone())
                    .map(|(url, topic)| emulate::MqttSource { url, topic }),
            },
            lang,
        ),
        Command::Plan {
            display,
            from,
            to,
            json,
        } => schedule::plan(
            &args.site,
            display,
            from.as_deref(),
            to.as_deref(),
            *json,
            lang,
        ),
        Command::Cron {
            expr,
            from,
            count,
            tz,
        } => schedule::cron(
            expr,
            from.as_deref(),
            *count,
            tz.as_deref(),
            &args.site,
            lang,
        ),
        Command::Run {
            dir,
            db,
            ledger,
            log_format,
        } => daemon::run(
            dir.as_deref().unwrap_or(&args.site),
            db.clone(),
            ledger.clone(),
            if log_format == "json" {
                daemon::LogFormat::Json
            } else {
                daemon::LogFormat::Text
            },
            lang,
        ),
        Command::Interrupt {
            text,
            to,
            duration,
            sms,
            end,
            list,
            url,
        } => daemon::interrupt(
            &args.site,
            &daemon::InterruptOptions {
                text: text.clone(),
                displays: to.clone(),
                duration: duration.clone(),
                sms: *sms,
                end: end.clone(),
                list: *list,
                url: url.clone(),
            },
            lang,
        ),
        Command::Audit {
            from,
            to,
            display,
            csv,
            db,
        } => audit::run(
            &args.site,
            &audit::Options {
                from: from.clone(),
                to: to.clone(),
                display: display.clone(),
                csv: *csv,
                db: db.clone(),
            },
            lang,
        ),
        Command::Review {
            item,
            stage,
            by,
            list: _,
            url,
        } => review::review(
            &args.site,
            &review::ReviewArgs {
                item: item.as_deref(),
                stage: stage.as_deref(),
                by: by.as_deref(),
                url: url.as_deref(),
            },
            lang,
        ),
        Command::Withdraw {
            item,
            restore,
            reason,
            url,
        } => daemon::withdraw(
            &args.site,
            item,
            *restore,
            reason.as_deref(),
            url.as_deref(),
            lang,
        ),
        Command::Backup { to, db, ledger } => backup::run(
            &[
                db.clone()
                    .unwrap_or_else(|| crate::store::default_path(&args.site)),
                ledger
                    .clone()
                    .unwrap_or_else(|| args.site.join(crate::sms::ledger::DEFAULT_PATH)),
            ],
            to,
            lang,
        ),
        Command::Publish {
            playlist,
            title,
            body,
            body_file,
            category,
            until,
            from,
            department,
            id,
            color,
            dry_run,
        } => publish::run(
            &args.site,
            &publish::Options {
                playlist: playlist.clone(),
                title: title.clone(),
                body: body.clone(),
                body_file: body_file.clone(),
                category: category.clone(),
                until: until.clone(),
                from: from.clone(),
                department: department.clone(),
                id: id.clone(),
                color: color.clone(),
                dry_run: *dry_run,
            },
            lang,
        ),
        Command::Sms { command } => match command {
            SmsCommand::Segments { text } => sms::segments(text, lang),
            SmsCommand::Preview { item } => sms::preview(&args.site, item, lang),
            SmsCommand::Send {
                item,
                dry_run,
                urgent,
                group,
                ledger,
            } => sms::send(
                &args.site,
                &sms::SendArgs {
                    item: item.clone(),
                    dry_run: *dry_run,
                    urgent: *urgent,
                    groups: group.clone(),
                    ledger: ledger.clone(),
                },
                lang,
            ),
            SmsCommand::Status {
                bulletin,
                ledger,
                show_numbers,
                limit,
            } => sms::status(
                &args.site,
                bulletin,
                ledger.as_deref(),
                *show_numbers,
                *limit,
                lang,
            ),
            SmsCommand::Import { file, ledger } => {
                sms::import(&args.site, file, ledger.as_deref(), lang)
            }
            SmsCommand::Reconcile { ledger } => sms::reconcile(&args.site, ledger.as_deref(), lang),
            SmsCommand::Cancel {
                bulletin,
                by,
                ledger,
            } => sms::cancel(&args.site, bulletin, by.as_deref(), ledger.as_deref(), lang),
            SmsCommand::Unknown {
                item,
                ledger,
                show_numbers,
                limit,
            } => sms::unknown(
                &args.site,
                item.as_deref(),
                ledger.as_deref(),
                *show_numbers,
                *limit,
                lang,
            ),
            SmsCommand::Resend {
                item,
                confirm,
                by,
                ledger,
            } => sms::resend(
                &args.site,
                &sms::ResendArgs {
                    item: item.clone(),
                    confirm: *confirm,
                    by: by.clone(),
                    ledger: ledger.clone(),
                },
                lang,
            ),
            SmsCommand::Consent { number, ledger } => {
                sms::consent(&args.site, number, ledger.as_deref(), lang)
            }
        },
    }
}

fn validate(site: &Path, lang: Lang) -> Exit {
    let loaded = config::load(site);
    let report = &loaded.report;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", report.render(lang));
    let counts = [
        ("errors", report.errors().to_string()),
        ("warnings", report.warnings().to_string()),
    ];
    let counts: Vec<(&str, &str)> = counts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match &loaded.model {
        Some(model) => {
            let items = model.items().count().to_string();
            let displays = model.displays.len().to_string();
            let playlists = model.playlists.len().to_string();
            let mut args = counts.clone();
            args.extend([
                ("displays", displays.as_str()),
                ("playlists", playlists.as_str()),
                ("items", items.as_str()),
            ]);
            let _ = writeln!(out, "{}", tr(lang, "cli.validate.ok", &args));
            Exit::Ok
        }
        None => {
            let _ = writeln!(out, "{}", tr(lang, "cli.validate.failed", &counts));
            Exit::Problems
        }
    }
}

fn schema(write: Option<&Path>, lang: Lang) -> Exit {
    let schemas = config::schema::all();
    let Some(dir) = write else {
        for (name, text) in &schemas {
            println!("// {name}\n{text}");
        }
        return Exit::Ok;
    };
    for (name, text) in &schemas {
        let path = dir.join(name);
        if let Err(error) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text))
        {
            let path = path.display().to_string();
            let reason = error.to_string();
            eprintln!(
                "{}",
                tr(
                    lang,
                    "cli.write_failed",
                    &[("path", &path), ("reason", &reason)]
                )
            );
            return Exit::Failed;
        }
    }
    Exit::Ok
}

/// The clap command with every text taken from the catalogue in `lang`.
pub fn localized_command(lang: Lang) -> clap::Command {
    let command = Args::command()
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::Version)
                .help(tr(lang, "cli.version", &[])),
        )
        .after_help(tr(lang, "cli.after_help", &[]));
    localize(command, lang, "gongkai")
}

/// The catalogue keys a command's texts live under: `cli.<path>.about` and
/// `cli.<path>.arg.<id>`.
fn localize(mut command: clap::Command, lang: Lang, path: &str) -> clap::Command {
    let usage = tr(lang, "cli.heading.usage", &[]);
    command = command
        .about(tr(lang, &format!("cli.{path}.about"), &[]))
        .help_template(format!(
            "{{about-with-newline}}\n{usage}{{usage}}\n\n{{all-args}}{{after-help}}"
        ))
        .subcommand_help_heading(tr(lang, "cli.heading.commands", &[]))
        .disable_help_subcommand(true)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help(tr(lang, "cli.help", &[])),
        );
    let options = tr(lang, "cli.heading.options", &[]);
    let positionals = tr(lang, "cli.heading.arguments", &[]);
    let ids: Vec<String> = command
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| id != "help" && id != "version")
        .collect();
    for id in ids {
        let key = format!("cli.{path}.arg.{id}");
        let (options, positionals) = (options.clone(), positionals.clone());
        command = command.mut_arg(&id, |arg| {
            let heading = if arg.is_positional() {
                positionals
            } else {
                options
            };
            arg.help(tr(lang, &key, &[])).help_heading(heading)
        });
    }
    for arg in ["help", "version"] {
        let heading = options.clone();
        if command.get_arguments().any(|a| a.get_id() == arg) {
            command = command.mut_arg(arg, |a| a.help_heading(heading));
        }
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = format!("{path}.{name}");
        command = command.mut_subcommand(&name, |sub| localize(sub, lang, &sub_path));
    }
    command
}

/// Every catalogue key the command line uses, for the test that both languages have them all.
pub fn catalogue_keys() -> Vec<String> {
    fn walk(command: &clap::Command, path: &str, keys: &mut Vec<String>) {
        keys.push(format!("cli.{path}.about"));
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" {
                keys.push(format!("cli.{path}.arg.{id}"));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path}.{}", sub.get_name()), keys);
        }
    }
    let mut keys: Vec<String> = [
        "cli.version",
        "cli.help",
        "cli.after_help",
        "cli.heading.usage",
        "cli.heading.commands",
        "cli.heading.options",
        "cli.heading.arguments",
        "cli.validate.ok",
        "cli.validate.failed",
        "cli.write_failed",
        "cli.unknown_lang",
    ]
    .map(String::from)
    .to_vec();
    walk(&Args::command(), "gongkai", &mut keys);
    keys
}
