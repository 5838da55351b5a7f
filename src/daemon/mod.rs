//! `gongkai run`: the daemon that keeps every board current.
//!
//! Owns the clock, the tasks and the running model: one task per display
//! ([`display`]: schedule → render → link), the tasks that own ports and the broker connection
//! ([`links`]), hot reload (the site directory watched, and SIGHUP), interrupts, the audit
//! writer, the admin listener ([`http`]) and a clean stop on SIGTERM/SIGINT.
//!
//! Reload swaps the model atomically (ARCHITECTURE.md, invariant 3): an invalid edit is logged
//! with its full diagnostics and shown by the status API, and the running model stays. A valid
//! one reaches only the displays whose inputs changed — their own settings, profile, or a
//! playlist that targets them; a display whose link changed gets a new link, and a display
//! removed from the site is withdrawn from its board.
//!
//! Must not touch: what a slot is (schedule), how it is drawn (raster), protocol bytes.

pub mod alerts;
pub mod audit;
pub mod display;
pub mod gate;
pub mod http;
pub mod links;
pub mod picture;
pub mod sms;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::Model;
use crate::config::model::DisplayIdx;
use crate::font::FontChain;
use crate::i18n::Lang;
use crate::schedule::Interrupt;
use crate::sms::secret::Secret;
use crate::store::{Store, StoredInterrupt};
use display::{DisplayStatus, Inputs, Stop};
use links::{AnyLink, LinkProbe, Owners, link_keys};

/// How `gongkai run` was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub site: PathBuf,
    /// The SMS ledger (default `var/sms-ledger.sqlite` under the site).
    pub ledger: PathBuf,
    /// Language of the diagnostics written to the log.
    pub lang: Lang,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the site has errors:\n{0}")]
    Invalid(String),
    #[error("admin listener {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("admin token: {0}")]
    Token(String),
    #[error("database {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An urgent notice on some displays for a while, as the operator gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    pub id: String,
    /// Display ids or group names; empty: every display.
    pub targets: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub text: String,
    /// Also sent as an SMS bulletin.
    #[serde(default)]
    pub sms: bool,
    #[serde(default)]
    pub by: Option<String>,
}

impl Notice {
    /// How the store keeps it.
    fn stored(&self) -> StoredInterrupt {
        StoredInterrupt {
            id: self.id.clone(),
            targets: self.targets.clone(),
            start: self.start,
            end: self.end,
            text: self.text.clone(),
            created_by: self.by.clone().unwrap_or_default(),
            created_at: self.start,
            also_sms: self.sms,
        }
    }

    /// The schedule's interrupt for `model`.
    fn resolve(&self, model: &Model) -> Interrupt {
        self.stored().for_model(model).unwrap_or_else(|| Interrupt {
            id: self.id.clone(),
            // Every target has gone from the site: it shows nowhere (an empty list would mean
            // every display).
            displays: vec![usize::MAX],
            start: self.start.with_timezone(&model.site.timezone),
            end: self.end.with_timezone(&model.site.timezone),
            text: self.text.clone(),
        })
    }

    /// Targets that name neither a display nor a group of `model`.
    pub fn unknown_targets<'a>(&'a self, model: &Model) -> Vec<&'a str> {
        self.targets
            .iter()
            .filter(|t| model.display(t).is_none() && !model.groups.contains_key(t.as_str()))
            .map(String::as_str)
            .collect()
    }
}

/// The last reload, for the status API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadState {
    /// When the running model was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last change that was refused, with its diagnostics; cleared by a good reload.
    pub rejected: Option<Rejected>,
    pub reloads: u64,
    pub rejections: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    pub at: DateTime<Utc>,
    pub errors: usize,
    pub diagnostics: String,
}

/// A display as the admin listener sees it.
#[derive(Debug, Clone)]
pub struct DisplayView {
    pub status: watch::Receiver<DisplayStatus>,
    pub probe: LinkProbe,
}

/// A request from the admin listener to the supervisor.
#[derive(Debug)]
pub enum Control {
    AddNotice(Notice, oneshot::Sender<Result<(), String>>),
    /// The notice's id and who ends it.
    EndNotice(String, String, oneshot::Sender<bool>),
    /// Takes an item off every board (the kill switch): the item, who, why.
    Withdraw {
        item: String,
        by: String,
        reason: String,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Lets a withdrawn item be shown again.
    Restore {
        item: String,
        by: String,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Records a review of an item's current text.
    Review {
        item: String,
        step: crate::review::Step,
        by: String,
        reply: oneshot::Sender<Result<crate::review::Standing, ReviewError>>,
    },
}

/// Why a review was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no item {0} in the site")]
    UnknownItem(String),
    #[error(transparent)]
    Refused(#[from] crate::review::Refusal),
    #[error("saving the review: {0}")]
    Store(String),
}

/// State shared between the supervisor and the admin listener.
pub struct Shared {
    pub site_dir: PathBuf,
    pub model: RwLock<Arc<Model>>,
    pub displays: RwLock<BTreeMap<String, DisplayView>>,
    pub reload: Mutex<ReloadState>,
    pub notices: Mutex<Vec<Notice>>,
    /// Items taken off every board until restored.
    pub withdrawn: Mutex<std::collections::BTreeSet<String>>,
    /// Every review recorded (from the store, then as they are recorded).
    pub reviews: Mutex<Vec<crate::review::Record>>,
    /// Items held back until reviewed far enough, as of the last reload.
    pub held: Mutex<Vec<gate::Held>>,
    /// Items whose current text has a second approval for a mass SMS.
    pub mass_sms_approved: sms::MassApproved,
    /// The site as loaded, before withdrawn and held items are taken out.
    pub loaded: RwLock<Arc<Model>>,
    /// A display id each time its status changes.
    pub events: broadcast::Sender<String>,
    pub control: mpsc::Sender<Control>,
    pub token: Option<Secret>,
    pub started: Instant,
    pub control_requests: AtomicU64,
    pub lang: Lang,
    /// From slot boundary to the link, every display.
    pub lateness: Arc<display::Lateness>,
    /// The SMS dispatcher in use, if the site sends SMS.
    pub sms: sms::SharedDispatcher,
    pub sms_status: Arc<Mutex<sms::SmsStatus>>,
    /// The public listener's token: gateways' callbacks must carry it (`?token=`).
    pub public_token: Option<Secret>,
    /// Open incidents and delivery counts of the alerts to the technicians.
    pub alerts: Mutex<alerts::AlertsStatus>,
}

impl Shared {
    pub fn model(&self) -> Arc<Model> {
        self.model
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// One running display task.
struct Running {
    idx: DisplayIdx,
    link_key: String,
    fingerprint: u64,
    inputs: watch::Sender<Arc<Inputs>>,
    stop: watch::Sender<Stop>,
    join: tokio::task::JoinHandle<AnyLink>,
}

/// The supervisor's own state.
struct Supervisor {
    shared: Arc<Shared>,
    owners: Owners,
    running: HashMap<String, Running>,
    fonts: HashMap<String, Arc<Mutex<FontChain>>>,
    /// Touchscreens' typeset glyphs, by profile.
    touch: HashMap<String, Arc<Mutex<crate::font::scalable::CoverageCache>>>,
    audit: mpsc::UnboundedSender<audit::AuditEvent>,
    /// Interrupts and withdrawals live here, so a restart recomputes the same timeline.
    store: Arc<Store>,
    /// The site as loaded, before withdrawn items are taken out.
    loaded: Arc<Model>,
    /// The site the daemon runs, for the SMS side.
    running_site: watch::Sender<Arc<Model>>,
    /// Work started in the background (an interrupt's SMS) that a stop waits for.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The text (hash) of each item that passed the gate last time: an item that stops
    /// passing because it was edited is logged as such.
    passed: HashMap<String, String>,
}

/// Runs the daemon until SIGTERM or SIGINT. Must be called inside a tokio runtime.
pub async fn run(options: Options, store: Arc<Store>) -> Result<(), StartError> {
    let audit_log = audit::store_log(store.clone()).map_err(|reason| StartError::Store {
        path: store.path().to_path_buf(),
        reason,
    })?;
    let site_dir = options.site.clone();
    let loaded = {
        let dir = site_dir.clone();
        tokio::task::spawn_blocking(move || crate::config::load(&dir))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    };
    let Some(model) = loaded.model else {
        return Err(StartError::Invalid(loaded.report.render(options.lang)));
    };
    if loaded.report.warnings() > 0 {
        tracing::warn!(
            warnings = loaded.report.warnings(),
            "the site loaded with warnings:\n{}",
            loaded.report.render(options.lang)
        );
    }
    let model = Arc::new(model);
    let admin = model.site.admin.clone();
    let token = match &admin.token {
        Some(source) => Some(
            crate::sms::secret::load(source, &site_dir, |k| std::env::var(k).ok())
                .map_err(|e| StartError::Token(e.to_string()))?,
        ),
        None => None,
    };
    let public_token = match model.site.public.as_ref().and_then(|p| p.token.as_ref()) {
        Some(source) => Some(
            crate::sms::secret::load(source, &site_dir, |k| std::env::var(k).ok())
                .map_err(|e| StartError::Token(e.to_string()))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(admin.addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: admin.addr,
            source,
        })?;
    let bound = listener.local_addr()?;
    let (control_tx, mut control_rx) = mpsc::channel(16);
    let (events, _) = broadcast::channel(256);
    let shared = Arc::new(Shared {
        site_dir: site_dir.clone(),
        model: RwLock::new(model.clone()),
        displays: RwLock::new(BTreeMap::new()),
        reload: Mutex::new(ReloadState {
            loaded_at: Some(Utc::now()),
            ..ReloadState::default()
        }),
        notices: Mutex::new(Vec::new()),
        withdrawn: Mutex::default(),
        reviews: Mutex::default(),
        held: Mutex::default(),
        mass_sms_approved: Arc::default(),
        loaded: RwLock::new(model.clone()),
        events,
        control: control_tx,
        token,
        started: Instant::now(),
        control_requests: AtomicU64::new(0),
        lang: options.lang,
        lateness: Arc::default(),
        sms: Arc::default(),
        sms_status: Arc::default(),
        public_token,
        alerts: Mutex::default(),
    });

    let (audit_tx, audit_rx) = mpsc::unbounded_channel();
    let audit_thread = std::thread::Builder::new()
        .name("gongkai-audit".into())
        .spawn(move || audit::write_events(audit_log, audit_rx))?;

    let mut supervisor = Supervisor {
        shared: shared.clone(),
        owners: Owners::default(),
        running: HashMap::new(),
        fonts: HashMap::new(),
        touch: HashMap::new(),
        audit: audit_tx,
        store: store.clone(),
        loaded: model.clone(),
        running_site: watch::Sender::new(model.clone()),
        background: Vec::new(),
        passed: HashMap::new(),
    };
    supervisor.load_notices().await;
    supervisor.load_withdrawn().await;
    supervisor.load_reviews().await;
    supervisor.apply(model).await;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sms_task = tokio::spawn(sms::run(
        supervisor.running_site.subscribe(),
        site_dir.clone(),
        options.ledger.clone(),
        store.clone(),
        sms::Handles {
            dispatcher: shared.sms.clone(),
            status: shared.sms_status.clone(),
            mass_approved: shared.mass_sms_approved.clone(),
        },
        shutdown_rx.clone(),
    ));
    let retention_task = tokio::spawn(prune_audit_daily(
        supervisor.running_site.subscribe(),
        store.clone(),
        shutdown_rx.clone(),
    ));
    let alerts_task = tokio::spawn(alerts::run(shared.clone(), shutdown_rx.clone()));
    let server = serve(
        listener,
        http::admin_router(shared.clone()),
        shutdown_rx.clone(),
        "admin listener",
    );
    // The public listener: the kiosk page (read-only) and, with SMS, the gateways' callbacks.
    let public_server = match shared.model().site.public.clone() {
        Some(public) => {
            let listener = tokio::net::TcpListener::bind(public.addr)
                .await
                .map_err(|source| StartError::Listen {
                    addr: public.addr,
                    source,
                })?;
            tracing::info!(public = %public.addr, "public listener: kiosk page at /kiosk/");
            Some(serve(
                listener,
                http::public_router(shared.clone()),
                shutdown_rx.clone(),
                "public listener",
            ))
        }
        None => None,
    };
    tracing::info!(
        site = %shared.model().site.name,
        displays = shared.model().displays.len(),
        admin = %bound,
        "running"
    );

    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<&'static str>();
    let _watcher = watch_site(&site_dir, reload_tx.clone());
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            Some(why) = reload_rx.recv() => {
                // Debounce: editors write a file in several steps; wait for a quiet moment.
                let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
                while let Ok(Some(_)) = tokio::time::timeout_at(
                    deadline.min(tokio::time::Instant::now() + DEBOUNCE_QUIET),
                    reload_rx.recv(),
                )
                .await
                {}
                supervisor.reload(why).await;
            }
            _ = hangup.recv() => supervisor.reload("SIGHUP").await,
            Some(control) = control_rx.recv() => supervisor.control(control).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("stopping");
    let _ = shutdown_tx.send(true);
    supervisor.stop_all().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    // A send in progress finishes its call and records the outcome (the ledger is the queue).
    let _ = tokio::time::timeout(Duration::from_secs(3), sms_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), retention_task).await;
    // Alerts under way get their last seconds (the task bounds its own wait).
    let _ = tokio::time::timeout(Duration::from_secs(4), alerts_task).await;
    if let Some(public) = public_server {
        let _ = tokio::time::timeout(Duration::from_secs(1), public).await;
    }
    let Supervisor {
        owners,
        audit,
        background,
        ..
    } = supervisor;
    // An interrupt's SMS under way finishes its calls and its audit row.
    for task in background {
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    owners.finish(Duration::from_secs(2)).await;
    drop(audit);
    let _ = tokio::task::spawn_blocking(move || audit_thread.join()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes audit rows older than the site's `retention.audit`, a minute after the start and
/// then once a day. Pruning is a deletion in one transaction; the next VACUUM (or `gongkai
/// backup`) returns the space.
async fn prune_audit_daily(
    site: watch::Receiver<Arc<Model>>,
    store: Arc<Store>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        next += Duration::from_secs(86_400);
        let years = site.borrow().site.retention.audit_years;
        let Some(before) = Utc::now().checked_sub_months(chrono::Months::new(12 * years)) else {
            continue;
        };
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.prune_audit(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(rows)) => {
                tracing::info!(rows, %before, "audit rows past their retention deleted")
            }
            result => tracing::error!(?result, "pruning the audit"),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true (requests under way finish).
fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "{name}");
        }
    })
}

/// Editors save in bursts; a reload waits for this much quiet …
const DEBOUNCE_QUIET: Duration = Duration::from_millis(100);
/// … but never longer than this after the first change.
const DEBOUNCE_MAX: Duration = Duration::from_millis(400);

fn signal(kind: tokio::signal::unix::SignalKind) -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind)
}

/// Watches the files the site is made of (not `var/`, not a build directory beside them).
fn watch_site(
    site_dir: &Path,
    tx: mpsc::UnboundedSender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let root = site_dir.to_path_buf();
    let relevant_root = root.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            let rel = p.strip_prefix(&relevant_root).unwrap_or(p);
            let text = rel.to_string_lossy();
            text == crate::config::SITE_FILE
                || text.starts_with("fonts/")
                || ((text.starts_with(crate::config::PROFILE_DIR)
                    || text.starts_with(crate::config::PLAYLIST_DIR))
                    && (text.ends_with(".yaml") || text.ends_with(".yml")))
                || text == crate::config::PROFILE_DIR
                || text == crate::config::PLAYLIST_DIR
        });
        if relevant {
            let _ = tx.send("file change");
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the site; reload with SIGHUP");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&root, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, "cannot watch the site; reload with SIGHUP");
        return None;
    }
    for dir in [
        crate::config::PROFILE_DIR,
        crate::config::PLAYLIST_DIR,
        "fonts",
    ] {
        let path = root.join(dir);
        if path.is_dir()
            && let Err(e) = watcher.watch(&path, RecursiveMode::Recursive)
        {
            tracing::warn!(error = %e, dir, "cannot watch");
        }
    }
    Some(watcher)
}

/// What each display's content depends on, hashed: when it differs after a reload, the display
/// recomputes (and sends only if its picture changed).
fn fingerprints(model: &Model) -> Vec<u64> {
    let hash = |text: String| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    };
    // Each playlist is described once, however many displays it targets.
    let playlists: Vec<u64> = model
        .playlists
        .iter()
        .map(|p| hash(format!("{p:?}")))
        .collect();
    let site = hash(format!(
        "{}|{}",
        model.site.name,
        model.site.timezone.name()
    ));
    model
        .displays
        .iter()
        .enumerate()
        .map(|(idx, d)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            site.hash(&mut h);
            format!("{d:?}").hash(&mut h);
            format!("{:?}", model.profile_of(d)).hash(&mut h);
            for (p, playlist) in model.playlists.iter().enumerate() {
                if playlist.targets.contains(&idx) {
                    playlists[p].hash(&mut h);
                }
            }
            h.finish()
        })
        .collect()
}

impl Supervisor {
    fn notices_for(&self, model: &Model) -> Arc<Vec<Interrupt>> {
        let notices = self
            .shared
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::new(notices.iter().map(|n| n.resolve(model)).collect())
    }

    fn fonts_for(&mut self, model: &Model, idx: DisplayIdx) -> Arc<Mutex<FontChain>> {
        let profile = model.profile_of(&model.displays[idx]);
        let key = format!("{:?}", profile.font);
        let site_dir = &self.shared.site_dir;
        self.fonts
            .entry(key)
            .or_insert_with(|| {
                let chain = crate::config::glyphs::load_chain(&profile.font, site_dir)
                    .unwrap_or_else(|why| {
                        tracing::error!(font = %why, "font unusable; drawing with Unifont");
                        FontChain::builtin(crate::config::model::BuiltinFont::Unifont)
                    });
                Arc::new(Mutex::new(chain))
            })
            .clone()
    }

    /// Runs `loaded` (a site as read), without the items withdrawn or held for review.
    async fn apply(&mut self, loaded: Arc<Model>) {
        self.loaded = loaded.clone();
        *self
            .shared
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded.clone();
        let withdrawn = self
            .shared
            .withdrawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let gated = {
            let reviews = self
                .shared
                .reviews
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            gate::gate(&loaded, &withdrawn, &reviews)
        };
        for held in &gated.held {
            if self
                .passed
                .get(&held.item)
                .is_some_and(|hash| *hash != held.hash)
            {
                tracing::warn!(
                    item = %held.item,
                    required = %held.required,
                    "the item changed after its review; held back until it is reviewed again"
                );
            }
        }
        let before = self
            .shared
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        // Said at the start and whenever the number changes, not at every reload.
        if gated.held.len() != before || self.running.is_empty() {
            tracing::info!(
                held = gated.held.len(),
                required = %loaded.site.review.required,
                "items held back until reviewed (gongkai review --list)"
            );
        }
        self.passed = gated.passed;
        *self
            .shared
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = gated.held;
        let mass_changed = {
            let mut approved = self
                .shared
                .mass_sms_approved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = *approved != gated.mass_sms;
            *approved = gated.mass_sms;
            changed
        };
        let model = gated.model.map_or(loaded, Arc::new);
        self.apply_model(model).await;
        if mass_changed {
            // The SMS side looks again now, not at its next minute: a mass send just approved
            // goes out at once even when the site itself did not change.
            self.running_site.send_modify(|_| {});
        }
    }

    fn touch_for(
        &mut self,
        model: &Model,
        idx: DisplayIdx,
    ) -> Option<Arc<Mutex<crate::font::scalable::CoverageCache>>> {
        let profile = model.profile_of(&model.displays[idx]);
        if !picture::is_touchscreen(profile) {
            return None;
        }
        let key = format!("{}|{:?}", profile.id, profile.font);
        let site_dir = &self.shared.site_dir;
        Some(
            self.touch
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Mutex::new(picture::touchscreen_glyphs(profile, site_dir)))
                })
                .clone(),
        )
    }

    /// What a display's task computes from.
    fn inputs(
        &mut self,
        model: &Arc<Model>,
        idx: DisplayIdx,
        interrupts: &Arc<Vec<Interrupt>>,
    ) -> Arc<Inputs> {
        Arc::new(Inputs {
            model: model.clone(),
            display: idx,
            interrupts: interrupts.clone(),
            fonts: self.fonts_for(model, idx),
            touch: self.touch_for(model, idx),
        })
    }

    /// Starts, updates, relinks and withdraws display tasks so that they run `model`.
    async fn apply_model(&mut self, model: Arc<Model>) {
        let keys = link_keys(&model);
        let prints = fingerprints(&model);
        let interrupts = self.notices_for(&model);
        // Displays that stay, by id, with what changed.
        let mut relink = Vec::new();
        let mut update = Vec::new();
        let mut withdraw = Vec::new();
        let new_ids: HashMap<&str, DisplayIdx> = model
            .displays
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        for (id, running) in &self.running {
            match new_ids.get(id.as_str()) {
                None => withdraw.push(id.clone()),
                Some(&idx) if keys[idx] != running.link_key => relink.push(id.clone()),
                Some(&idx) => {
                    if prints[idx] != running.fingerprint || running.idx != idx {
                        update.push((id.clone(), idx));
                    }
                }
            }
        }
        for id in &withdraw {
            self.stop_one(id, Stop::Withdraw).await;
            tracing::info!(display = %id, "removed from the site; withdrawn");
        }
        for id in &relink {
            self.stop_one(id, Stop::Leave).await;
        }
        self.shared
            .displays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id, _| new_ids.contains_key(id.as_str()));
        for (id, idx) in update {
            let inputs = self.inputs(&model, idx, &interrupts);
            if let Some(running) = self.running.get_mut(&id) {
                running.idx = idx;
                running.fingerprint = prints[idx];
                running.inputs.send_replace(inputs);
                tracing::info!(display = %id, "updated");
            }
        }
        let wanted: Vec<DisplayIdx> = (0..model.displays.len())
            .filter(|&i| !self.running.contains_key(&model.displays[i].id))
            .collect();
        let mut built = self
            .owners
            .build(&model, &self.shared.site_dir, &wanted)
            .await;
        let mqtt = self.owners.mqtt_connection();
        for idx in wanted {
            let Some(link) = built.remove(&idx) else {
                continue;
            };
            let d = &model.displays[idx];
            let profile = model.profile_of(d);
            let status = watch::Sender::new(DisplayStatus {
                id: d.id.clone(),
                name: d.name.clone(),
                location: d.location.clone(),
                width: profile.width,
                height: profile.height,
                led_color: Some(profile.led_color),
                touchscreen: picture::is_touchscreen(profile),
                ..DisplayStatus::default()
            });
            let probe = link.probe(mqtt.as_ref());
            self.shared
                .displays
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(
                    d.id.clone(),
                    DisplayView {
                        status: status.subscribe(),
                        probe,
                    },
                );
            let inputs = watch::Sender::new(self.inputs(&model, idx, &interrupts));
            let stop = watch::Sender::new(Stop::Run);
            let join = tokio::spawn(display::run(
                inputs.subscribe(),
                link,
                status,
                self.audit.clone(),
                stop.subscribe(),
                self.shared.events.clone(),
                self.shared.lateness.clone(),
            ));
            self.running.insert(
                d.id.clone(),
                Running {
                    idx,
                    link_key: keys[idx].clone(),
                    fingerprint: prints[idx],
                    inputs,
                    stop,
                    join,
                },
            );
        }
        *self
            .shared
            .model
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = model.clone();
        // Only a change of the site restarts the SMS side's dispatcher.
        if !Arc::ptr_eq(&self.running_site.borrow(), &model) {
            self.running_site.send_replace(model);
        }
    }

    async fn stop_one(&mut self, id: &str, how: Stop) {
        if let Some(running) = self.running.remove(id) {
            running.stop.send_replace(how);
            match tokio::time::timeout(Duration::from_secs(4), running.join).await {
                Ok(Ok(link)) => drop(link),
                Ok(Err(e)) => tracing::error!(display = %id, error = %e, "display task failed"),
                Err(_) => tracing::error!(display = %id, "display task did not stop in time"),
            }
        }
    }

    async fn stop_all(&mut self) {
        for running in self.running.values() {
            running.stop.send_replace(Stop::Leave);
        }
        let all: Vec<(String, Running)> = self.running.drain().collect();
        for (id, running) in all {
            match tokio::time::timeout(Duration::from_secs(4), running.join).await {
                Ok(Ok(link)) => drop(link),
                Ok(Err(e)) => tracing::error!(display = %id, error = %e, "display task failed"),
                Err(_) => tracing::error!(display = %id, "display task did not stop in time"),
            }
        }
    }

    async fn reload(&mut self, why: &'static str) {
        let dir = self.shared.site_dir.clone();
        let started = Instant::now();
        let loaded = match tokio::task::spawn_blocking(move || crate::config::load(&dir)).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "reload failed");
                return;
            }
        };
        match loaded.model {
            Some(model) => {
                self.apply(Arc::new(model)).await;
                let mut state = self
                    .shared
                    .reload
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state.loaded_at = Some(Utc::now());
                state.rejected = None;
                state.reloads += 1;
                tracing::info!(
                    trigger = why,
                    ms = started.elapsed().as_millis() as u64,
                    "reloaded"
                );
            }
            None => {
                let diagnostics = loaded.report.render(self.shared.lang);
                tracing::error!(
                    trigger = why,
                    errors = loaded.report.errors(),
                    "the change was refused; the running site stays:\n{diagnostics}"
                );
                let mut state = self
                    .shared
                    .reload
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state.rejections += 1;
                state.rejected = Some(Rejected {
                    at: Utc::now(),
                    errors: loaded.report.errors(),
                    diagnostics,
                });
            }
        }
    }

    async fn control(&mut self, control: Control) {
        match control {
            Control::AddNotice(notice, reply) => {
                tracing::info!(id = %notice.id, targets = ?notice.targets, until = %notice.end, "interrupt");
                let stored = notice.stored();
                if notice.sms {
                    self.send_notice_sms(&notice);
                }
                {
                    let mut notices = self
                        .shared
                        .notices
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let now = Utc::now();
                    notices.retain(|n| n.end > now && n.id != notice.id);
                    notices.push(notice);
                }
                let store = self.store.clone();
                let saved = tokio::task::spawn_blocking(move || store.add_interrupt(&stored))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                if let Err(e) = &saved {
                    tracing::error!(error = %e, "saving the interrupt");
                }
                self.push_interrupts();
                let _ = reply.send(saved);
            }
            Control::Withdraw {
                item,
                by,
                reason,
                reply,
            } => {
                let result = self.set_withdrawn(item, by, Some(reason)).await;
                let _ = reply.send(result);
            }
            Control::Restore { item, by, reply } => {
                let result = self.set_withdrawn(item, by, None).await;
                let _ = reply.send(result);
            }
            Control::Review {
                item,
                step,
                by,
                reply,
            } => {
                let result = self.review(item, step, by).await;
                let _ = reply.send(result);
            }
            Control::EndNotice(id, by, reply) => {
                let found = {
                    let mut notices = self
                        .shared
                        .notices
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let now = Utc::now();
                    let mut found = false;
                    for n in notices.iter_mut().filter(|n| n.id == id && n.end > now) {
                        n.end = now;
                        found = true;
                    }
                    found
                };
                if found {
                    tracing::info!(id = %id, "interrupt ended");
                    let store = self.store.clone();
                    let ended = id.clone();
                    let saved = tokio::task::spawn_blocking(move || {
                        store.end_interrupt(&ended, Utc::now(), &by)
                    })
                    .await;
                    if !matches!(saved, Ok(Ok(_))) {
                        tracing::error!(result = ?saved, "saving the end of the interrupt");
                    }
                    self.push_interrupts();
                }
                let _ = reply.send(found);
            }
        }
    }

    /// Sends an interrupt as an urgent SMS bulletin too (quiet hours do not hold it), in the
    /// background: the boards do not wait for the gateways.
    fn send_notice_sms(&mut self, notice: &Notice) {
        if self.loaded.site.sms.is_none() {
            tracing::warn!(id = %notice.id, "the interrupt asks for SMS, but the site sends none");
            return;
        }
        let slot = self.shared.sms.clone();
        let notice = notice.clone();
        let store = self.store.clone();
        self.background.retain(|task| !task.is_finished());
        self.background.push(tokio::spawn(async move {
            // Just after a start or a reload the SMS side may still be opening its ledger: an
            // urgent notice waits for it (a few seconds at most) rather than being dropped.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            let dispatcher = loop {
                let current = slot
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Some(dispatcher) = current {
                    break dispatcher;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::error!(id = %notice.id, "the interrupt's SMS: the SMS side did not start");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let options = crate::sms::dispatch::SendOptions {
                urgent: true,
                ..Default::default()
            };
            match dispatcher
                .send_notice(&notice.id, picture::INTERRUPT_TITLE, &notice.text, &options)
                .await
            {
                Ok(counts) => {
                    tracing::info!(id = %notice.id, recipients = counts.new, sent = counts.sent, "interrupt sent as SMS");
                    let bulletin = crate::store::Bulletin {
                        item: notice.id.clone(),
                        title: picture::INTERRUPT_TITLE.to_owned(),
                        text: notice.text.clone(),
                        recipients: u32::try_from(counts.new).unwrap_or(u32::MAX),
                        at: Utc::now(),
                        by: notice.by.clone().unwrap_or_default(),
                    };
                    let _ = tokio::task::spawn_blocking(move || store.bulletin_recorded(&bulletin))
                        .await;
                }
                Err(e) => tracing::error!(id = %notice.id, error = %e, "the interrupt's SMS"),
            }
        }));
    }

    /// Hands every display the interrupts in force; a display that is not concerned finds
    /// its slot unchanged and sends nothing.
    fn push_interrupts(&mut self) {
        let model = self.shared.model();
        let interrupts = self.notices_for(&model);
        let displays: Vec<(String, DisplayIdx)> = self
            .running
            .iter()
            .map(|(id, r)| (id.clone(), r.idx))
            .collect();
        for (id, idx) in displays {
            let inputs = self.inputs(&model, idx, &interrupts);
            if let Some(running) = self.running.get(&id) {
                running.inputs.send_replace(inputs);
            }
        }
    }

    /// The withdrawn items, from the store: a restart keeps them off the boards.
    async fn load_withdrawn(&mut self) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.withdrawn()).await {
            Ok(Ok(items)) => {
                if !items.is_empty() {
                    tracing::info!(items = ?items, "withdrawn items stay off the boards");
                }
                *self
                    .shared
                    .withdrawn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    items.into_iter().collect();
            }
            result => tracing::error!(?result, "reading the withdrawn items"),
        }
    }

    /// The reviews recorded so far, from the store.
    async fn load_reviews(&mut self) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.reviews()).await {
            Ok(Ok(reviews)) => {
                *self
                    .shared
                    .reviews
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = reviews;
            }
            // Without the reviews every item is held (the safe side) and the log says why.
            result => tracing::error!(?result, "reading the reviews"),
        }
    }

    /// Records `step` by `by` for the current text of `item`, then runs the site again.
    async fn review(
        &mut self,
        item: String,
        step: crate::review::Step,
        by: String,
    ) -> Result<crate::review::Standing, ReviewError> {
        let Some(found) = self
            .loaded
            .playlists
            .iter()
            .flat_map(|p| &p.items)
            .find(|i| i.id == item)
        else {
            return Err(ReviewError::UnknownItem(item));
        };
        let hash = crate::review::content_hash(found);
        let mut records: Vec<crate::review::Record> = self
            .shared
            .reviews
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|r| r.item == item)
            .cloned()
            .collect();
        let standing = crate::review::standing(&hash, &records);
        crate::review::check(&standing, step, &by, self.loaded.site.review.required)?;
        let record = crate::review::Record {
            item,
            step,
            by: by.trim().to_owned(),
            at: Utc::now(),
            hash: hash.clone(),
        };
        let store = self.store.clone();
        let saved = record.clone();
        tokio::task::spawn_blocking(move || store.add_review(&saved))
            .await
            .map_err(|e| ReviewError::Store(e.to_string()))?
            .map_err(|e| ReviewError::Store(e.to_string()))?;
        tracing::info!(item = %record.item, step = record.step.code(), by = %record.by, "review recorded");
        self.shared
            .reviews
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(record.clone());
        records.push(record);
        let loaded = self.loaded.clone();
        self.apply(loaded).await;
        Ok(crate::review::standing(&hash, &records))
    }

    /// Cancels the SMS of a withdrawn item that no gateway has been handed yet, and records
    /// how many in the audit. Rows already with a gateway cannot be called back.
    async fn cancel_sms(&mut self, item: &str, by: &str) {
        let dispatcher = self
            .shared
            .sms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(dispatcher) = dispatcher else {
            return;
        };
        let (subject, who, store) = (item.to_owned(), by.to_owned(), self.store.clone());
        let done = tokio::task::spawn_blocking(move || {
            let cancelled = dispatcher
                .cancel_item(&subject, Utc::now())
                .map_err(|e| e.to_string())?;
            if cancelled > 0 {
                let count = cancelled.to_string();
                let action = crate::store::Action::SmsCancelled;
                store
                    .record(action, &subject, &who, &count, Utc::now())
                    .map_err(|e| e.to_string())?;
            }
            Ok::<u64, String>(cancelled)
        })
        .await;
        match done {
            Ok(Ok(0)) => {}
            Ok(Ok(cancelled)) => {
                tracing::warn!(item = %item, cancelled, "SMS of the withdrawn item cancelled")
            }
            result => tracing::error!(item = %item, ?result, "cancelling the withdrawn item's SMS"),
        }
    }

    /// Withdraws or restores `item`, then runs the site again without what is withdrawn.
    async fn set_withdrawn(
        &mut self,
        item: String,
        by: String,
        withdraw: Option<String>,
    ) -> Result<bool, String> {
        let store = self.store.clone();
        let (subject, who) = (item.clone(), by.clone());
        let withdrawing = withdraw.is_some();
        let changed = tokio::task::spawn_blocking(move || match &withdraw {
            Some(reason) => store.withdraw(&subject, Utc::now(), &who, reason),
            None => store.restore(&subject, Utc::now(), &who),
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if changed {
            {
                let mut withdrawn = self
                    .shared
                    .withdrawn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if withdrawn.contains(&item) {
                    withdrawn.remove(&item);
                    tracing::info!(item = %item, by = %by, "restored");
                } else {
                    withdrawn.insert(item.clone());
                    tracing::warn!(item = %item, by = %by, "withdrawn from every board");
                }
            }
            if withdrawing {
                self.cancel_sms(&item, &by).await;
            }
            let loaded = self.loaded.clone();
            self.apply(loaded).await;
        }
        Ok(changed)
    }

    /// The interrupts still in force, from the store: a restart shows what was interrupted.
    async fn load_notices(&mut self) {
        let store = self.store.clone();
        let now = Utc::now();
        match tokio::task::spawn_blocking(move || store.interrupts_active(now)).await {
            Ok(Ok(stored)) => {
                let notices: Vec<Notice> = stored
                    .into_iter()
                    .map(|i| Notice {
                        id: i.id,
                        targets: i.targets,
                        start: i.start,
                        end: i.end,
                        text: i.text,
                        sms: i.also_sms,
                        by: (!i.created_by.is_empty()).then_some(i.created_by),
                    })
                    .collect();
                if !notices.is_empty() {
                    tracing::info!(count = notices.len(), "interrupts in force");
                }
                *self
                    .shared
                    .notices
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = notices;
            }
            result => tracing::error!(?result, "reading the interrupts; starting without"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SiteSources, SourceFile, validate};
    use crate::diag::Report;

    const PROFILE: &str = "width: 128\nheight: 16\npixel: mono\nfont: wqy16\nprotocol: gongkai\nserial: { bauds: [9600] }\n";

    /// Windows 1 and 2 share a bus; `town` is on MQTT; `hall` simulated.
    fn model(site_extra: &str, playlists: &[(&str, &str)]) -> Model {
        let site = format!(
            "site: 测试县\ntimezone: Asia/Shanghai\nmqtt: {{ broker: mqtt://127.0.0.1:1883 }}\ndisplays:\n  - id: w1\n    profile: board\n    link: {{ serial: /dev/ttyUSB0, baud: 9600, address: 1 }}\n    groups: [windows]\n  - id: w2\n    profile: board\n    link: {{ serial: /dev/ttyUSB0, baud: 9600, address: 2 }}\n    groups: [windows]\n  - id: town\n    profile: board\n    link: {{ mqtt: boards/town }}\n  - id: hall\n    profile: board\n    link: {{ simulated: true }}\n{site_extra}"
        );
        let sources = SiteSources {
            site: Some(SourceFile {
                name: "gongkai.yaml".into(),
                text: site,
            }),
            profiles: vec![SourceFile {
                name: "hw-profiles/board.yaml".into(),
                text: PROFILE.into(),
            }],
            playlists: playlists
                .iter()
                .map(|(name, text)| SourceFile {
                    name: format!("playlists/{name}.yaml"),
                    text: (*text).to_owned(),
                })
                .collect(),
            fonts: Vec::new(),
        };
        let loaded = validate::check(sources, Report::default());
        match loaded.model {
            Some(model) => model,
            None => panic!("invalid:\n{}", loaded.report.render(Lang::En)),
        }
    }

    fn playlist(targets: &str, title: &str) -> String {
        format!(
            "id: p-{targets}\ntargets: [{targets}]\nitems:\n  - {{ id: i-{targets}, title: {title}, category: 其他 }}\n"
        )
    }

    #[test]
    fn an_edited_playlist_changes_only_the_fingerprints_of_its_targets() {
        let before = model(
            "",
            &[
                ("a", &playlist("windows", "一号")),
                ("b", &playlist("town", "二号")),
            ],
        );
        let after = model(
            "",
            &[
                ("a", &playlist("windows", "一号改")),
                ("b", &playlist("town", "二号")),
            ],
        );
        let changed: Vec<&str> = (0..before.displays.len())
            .filter(|&i| fingerprints(&before)[i] != fingerprints(&after)[i])
            .map(|i| before.displays[i].id.as_str())
            .collect();
        assert_eq!(changed, ["w1", "w2"]);
    }

    #[test]
    fn a_board_added_to_a_bus_relinks_that_bus_only() {
        let before = model("", &[]);
        let after = model(
            "  - id: w3\n    profile: board\n    link: { serial: /dev/ttyUSB0, baud: 9600, address: 3 }\n",
            &[],
        );
        let (old, new) = (link_keys(&before), link_keys(&after));
        // w1 and w2 share the port with the newcomer: their port task starts again.
        assert_ne!(old[0], new[0]);
        assert_ne!(old[1], new[1]);
        // The MQTT board and the simulated one keep their links.
        assert_eq!(old[2], new[2]);
        assert_eq!(old[3], new[3]);
    }

    #[test]
    fn a_notice_resolves_groups_and_shows_nowhere_once_its_targets_are_gone() {
        let m = model("", &[]);
        let notice = Notice {
            id: "n".into(),
            targets: vec!["windows".into(), "hall".into()],
            start: Utc::now(),
            end: Utc::now(),
            text: "停电通知".into(),
            sms: false,
            by: None,
        };
        assert_eq!(notice.resolve(&m).displays, [0, 1, 3]);
        assert!(notice.unknown_targets(&m).is_empty());
        let gone = Notice {
            targets: vec!["nowhere".into()],
            ..notice.clone()
        };
        assert_eq!(gone.unknown_targets(&m), ["nowhere"]);
        // An empty list would mean every display: a notice whose targets left the site must
        // not take over the whole county.
        assert!(!gone.resolve(&m).displays.is_empty());
        assert!(
            !(0..m.displays.len()).any(|i| gone.resolve(&m).displays.contains(&i)),
            "shows nowhere"
        );
        let everywhere = Notice {
            targets: vec![],
            ..notice
        };
        assert!(everywhere.resolve(&m).displays.is_empty());
    }
}
