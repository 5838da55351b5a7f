//! The validated site: every reference resolved, every value parsed and in range.
//!
//! A `Model` exists only when validation found no error, so the stages after config never
//! re-check what is written here. Indices (`DisplayIdx`, `ProfileIdx`) point into the model's
//! own vectors; ids stay as strings for output.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;

pub use super::raw::{
    Category, Channel, ClockZone, ColorOrder, Corner, LedColor, PixelFormat, Protocol, ShowMode,
    TitleBar, WiringLayout,
};

/// Index into [`Model::displays`].
pub type DisplayIdx = usize;
/// Index into [`Model::profiles`].
pub type ProfileIdx = usize;

/// A whole site, ready to run.
#[derive(Debug, Clone)]
pub struct Model {
    pub site: Site,
    /// Sorted by id.
    pub profiles: Vec<Profile>,
    /// In the order of the site file.
    pub displays: Vec<Display>,
    /// Group name → its displays, in site-file order.
    pub groups: BTreeMap<String, Vec<DisplayIdx>>,
    /// Sorted by file name, then by order within the file: "file order" for tie-breaks.
    pub playlists: Vec<Playlist>,
}

impl Model {
    pub fn display(&self, id: &str) -> Option<&Display> {
        self.displays.iter().find(|d| d.id == id)
    }

    /// The link the daemon drives for `display`: simulated when the site says so.
    pub fn effective_link<'a>(&self, display: &'a Display) -> std::borrow::Cow<'a, Link> {
        if self.site.simulate {
            std::borrow::Cow::Owned(Link::Simulated)
        } else {
            std::borrow::Cow::Borrowed(&display.link)
        }
    }

    pub fn profile_of(&self, display: &Display) -> &Profile {
        &self.profiles[display.profile]
    }

    /// Every item of every playlist, with the playlist it belongs to.
    pub fn items(&self) -> impl Iterator<Item = (&Playlist, &Item)> {
        self.playlists
            .iter()
            .flat_map(|p| p.items.iter().map(move |i| (p, i)))
    }

    pub fn item(&self, id: &str) -> Option<(&Playlist, &Item)> {
        self.items().find(|(_, item)| item.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub timezone: Tz,
    /// Every link is simulated in the process, whatever the displays say.
    pub simulate: bool,
    pub mqtt: Option<Mqtt>,
    pub sms: Option<Sms>,
    pub admin: Listener,
    pub public: Option<Listener>,
    pub review: Review,
    pub retention: Retention,
    /// Alerts to the technicians; None: off.
    pub alerts: Option<super::alerts::Alerts>,
}

/// What boards and SMS require of an item's review (see [`crate::review`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Review {
    pub required: crate::review::Stage,
}

impl Default for Review {
    fn default() -> Self {
        Review {
            required: crate::review::Stage::Approved,
        }
    }
}

/// How long records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The audit, in whole years (calendar years back from now).
    pub audit_years: u32,
    /// The text of messages whose deliveries are all final.
    pub sms_texts: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            audit_years: 10,
            sms_texts: Duration::from_secs(180 * 86_400),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mqtt {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// With TLS: the CA (PEM file, relative to the site directory unless absolute) that signs
    /// the broker's certificate, trusted instead of the system's roots.
    pub ca_file: Option<String>,
}

/// Where a secret is read from when it is needed. The secret itself is never in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub signature: String,
    /// Relative to the site directory unless absolute.
    pub outbox: String,
    /// The `{url}` of templates; empty when the site names none.
    pub read_more: String,
    /// Ends every free-text bulletin; empty for none.
    pub opt_out: String,
    /// Bulletins are cut to fit this many messages.
    pub parts: u32,
    /// The free-text template of items without a template of their own category.
    pub default_template: String,
    /// Free-text templates by category, already checked.
    pub templates: BTreeMap<Category, String>,
    /// No bulletin (but urgent ones) goes out in this daily window.
    pub quiet_hours: QuietHours,
    /// Most messages per number per day.
    pub daily_cap: u32,
    pub digest: bool,
    /// In routing order. Empty: the local outbox.
    pub gateways: Vec<SmsGateway>,
    /// A bulletin to more subscribers than this needs a second approval (`mass-sms`).
    pub second_approval_above: u32,
}

impl Sms {
    /// The checked free-text template for `category`.
    pub fn template(&self, category: Category) -> &str {
        self.templates
            .get(&category)
            .map_or(self.default_template.as_str(), String::as_str)
    }
}

/// A daily window; `until` earlier than `from` means it runs past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: chrono::NaiveTime,
    pub until: chrono::NaiveTime,
}

impl QuietHours {
    /// Whether local time `t` falls in the window.
    pub fn contains(&self, t: chrono::NaiveTime) -> bool {
        if self.from <= self.until {
            self.from <= t && t < self.until
        } else {
            t >= self.from || t < self.until
        }
    }
}

/// A configured gateway: the provider's non-secret settings, and where its secret is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsGateway {
    pub id: String,
    pub kind: SmsGatewayKind,
    /// None only for the outbox.
    pub secret: Option<SecretSource>,
    /// The approved template; present for aliyun and tencent, optional for yunmas.
    pub template: Option<ApprovedTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsGatewayKind {
    Outbox,
    YunMas(crate::sms::gateways::yunmas::YunMas),
    Aliyun(crate::sms::gateways::aliyun::Aliyun),
    Tencent(crate::sms::gateways::tencent::Tencent),
    Kannel(crate::sms::gateways::kannel::Kannel),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedTemplate {
    pub id: String,
    /// The template's text with `{name}` variables, for counting; None when not given.
    pub text: Option<String>,
    pub vars: Vec<crate::sms::bulletin::TemplateVar>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: std::net::SocketAddr,
    pub token: Option<SecretSource>,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    /// The profile's file, relative to the site.
    pub file: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub pixel: PixelFormat,
    pub led_color: LedColor,
    pub font: FontRef,
    pub protocol: Protocol,
    /// Empty when the board has no serial interface.
    pub bauds: Vec<u32>,
    /// Receive buffer; payloads larger than this are chunked.
    pub buffer: Option<u32>,
    pub local_pages: bool,
    pub local_scroll: bool,
    pub brightness: std::ops::RangeInclusive<u32>,
    pub wiring: Option<Wiring>,
    pub zones: Zones,
}

/// How the screen is divided, as the profile says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zones {
    pub title: TitleBar,
    pub clock: ClockZone,
    /// Extra pixels between lines.
    pub line_spacing: u32,
    /// Left and right margin in pixels.
    pub margin: u32,
}

/// A font a profile names: one of the built-in u8g2 fonts, or a file in the site's `fonts/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FontRef {
    Builtin(BuiltinFont),
    /// Path relative to the site directory, and the pixel size for scalable fonts.
    File {
        path: String,
        size: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinFont {
    Wqy12,
    Wqy14,
    Wqy15,
    Wqy16,
    Unifont,
}

impl BuiltinFont {
    pub const ALL: [(&'static str, BuiltinFont); 5] = [
        ("wqy12", BuiltinFont::Wqy12),
        ("wqy14", BuiltinFont::Wqy14),
        ("wqy15", BuiltinFont::Wqy15),
        ("wqy16", BuiltinFont::Wqy16),
        ("unifont", BuiltinFont::Unifont),
    ];

    pub fn from_name(name: &str) -> Option<BuiltinFont> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wiring {
    pub layout: WiringLayout,
    pub origin: Corner,
    pub order: ColorOrder,
}

#[derive(Debug, Clone)]
pub struct Display {
    pub id: String,
    pub name: String,
    pub location: Option<String>,
    pub profile: ProfileIdx,
    pub link: Link,
    pub groups: Vec<String>,
    /// Brightness points in site-file order; the most recent one that fired sets the level.
    pub brightness: Vec<BrightnessPoint>,
    /// Windows during which the board is switched off.
    pub power_off: Vec<Window>,
    /// Line and column of the display's `id` in the site file, for messages about it.
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Simulated,
    /// `address` is `None` only for protocols without one (TPM2, Adalight).
    Serial {
        port: String,
        baud: u32,
        address: Option<u8>,
    },
    /// Topic below the site's MQTT prefix.
    Mqtt {
        topic: String,
    },
}

#[derive(Debug, Clone)]
pub struct Playlist {
    pub id: String,
    pub name: String,
    /// Path relative to the site directory.
    pub file: String,
    /// Resolved displays, each once, in site-file order.
    pub targets: Vec<DisplayIdx>,
    /// Empty: the targets' default playlist, always on.
    pub windows: Vec<Window>,
    pub priority: i32,
    pub items: Vec<Item>,
}

/// An on-air window: from each time `cron` fires, for `duration`.
#[derive(Debug, Clone)]
pub struct Window {
    /// As the operator wrote it.
    pub cron_text: String,
    pub cron: croner::Cron,
    pub duration: Duration,
    pub dates: Validity,
}

/// From each time `cron` fires, the display runs at `level` until the next point fires.
#[derive(Debug, Clone)]
pub struct BrightnessPoint {
    /// As the operator wrote it.
    pub cron_text: String,
    pub cron: croner::Cron,
    /// Within the profile's brightness range.
    pub level: u32,
}

/// A half-open interval `[from, until)` in the site's timezone; `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validity {
    pub from: Option<DateTime<Tz>>,
    pub until: Option<DateTime<Tz>>,
}

impl Validity {
    pub fn contains(&self, t: &DateTime<Tz>) -> bool {
        self.from.as_ref().is_none_or(|from| from <= t)
            && self.until.as_ref().is_none_or(|until| t < until)
    }
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub title: String,
    pub body: String,
    pub category: Category,
    pub department: Option<String>,
    pub valid: Validity,
    pub show: Show,
    pub color: Option<Rgb>,
    pub channels: Vec<Channel>,
    /// A priority notice: while its playlist is on air, it starts at least this often.
    pub at_least_every: Option<Duration>,
    /// Line of the item's `id` in its playlist file, for messages about the item.
    pub line: u32,
    /// Column and length of the item's `id`, with `line`: where messages about the item point.
    pub id_at: (u32, u32),
    /// Where the title and the body are written (line, column, length), for messages about
    /// their characters.
    pub title_at: (u32, u32, u32),
    pub body_at: Option<(u32, u32, u32)>,
}

/// How an item plays on a board.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Show {
    pub mode: ShowMode,
    /// Page mode: how long each page stays.
    pub dwell: Duration,
    /// Scroll and roll modes: pixels per second.
    pub speed: f32,
    /// Scroll and roll modes: how many times the text passes.
    pub passes: u32,
}

impl Default for Show {
    fn default() -> Self {
        Show {
            mode: ShowMode::Page,
            dwell: Duration::from_secs(8),
            speed: 32.0,
            passes: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);
