//! Stage two of loading: raw files → [`Model`]. Resolves every reference (profiles, displays,
//! groups, fonts), parses every small value language, and checks the rules that span files
//! (unique ids, RS-485 buses shared consistently). Reports every problem it finds; builds the
//! model only when none is an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, TimeZone};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;

use super::model::*;
use super::raw::{
    self, Located, RawDisplay, RawItem, RawPlaylist, RawProfile, RawShow, RawSite, RawValidity,
};
use super::values::{self, CronProblem, DurationError};
use super::yaml_errors::{self, closest};
use super::{Loaded, SiteSources, SourceFile};
use crate::diag::{Diagnostic, Msg, Pos, Report};

/// The timezone of a site that names none.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Shanghai;
/// The admin listener of a site that names none: loopback only.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8640";

/// Parses and validates every file of a site, adding problems to `report`.
pub fn check(sources: SiteSources, report: Report) -> Loaded {
    let mut cx = Checker {
        report,
        fonts: sources.fonts.into_iter().collect(),
        dropped_names: HashSet::new(),
        sms_section: false,
        sms_caps: Vec::new(),
    };

    let site = sources.site.and_then(|file| cx.parse::<RawSite>(file));
    let mut profile_files = Vec::new();
    let mut broken_profiles = HashSet::new();
    for file in sources.profiles {
        let id = profile_id(&file.name);
        match cx.parse::<RawProfile>(file) {
            Some((name, raw)) => profile_files.push((id, name, raw)),
            None => {
                broken_profiles.insert(id);
            }
        }
    }
    let playlist_files: Vec<(String, RawPlaylist)> = sources
        .playlists
        .into_iter()
        .filter_map(|file| cx.parse::<RawPlaylist>(file))
        .collect();

    let mut profiles: Vec<Profile> = Vec::with_capacity(profile_files.len());
    let mut profile_places: HashMap<String, String> = HashMap::new();
    for (id, file, raw) in profile_files {
        // `x.yaml` and `x.yml` would both be profile `x`.
        if let Some(first) = profile_places.insert(id.clone(), file.clone()) {
            cx.report.push(
                Diagnostic::error(
                    Pos::file(&file),
                    Msg::new("check.duplicate_profile").arg("id", &id),
                )
                .with_hint(Msg::new("check.duplicate_id.hint").arg("place", first)),
            );
            broken_profiles.insert(id);
            continue;
        }
        match cx.profile(id.clone(), &file, raw) {
            Some(profile) => profiles.push(profile),
            // Its problems are reported; displays using it are not reported again.
            None => {
                broken_profiles.insert(id);
            }
        }
    }
    profiles.retain(|p| !broken_profiles.contains(&p.id));
    profiles.sort_by(|a, b| a.id.cmp(&b.id));

    let Some((site_file, raw_site)) = site else {
        // Without the site file there are no displays to resolve targets against; the
        // playlists were still parsed above, so their syntax errors are reported.
        cx.report.sort();
        return Loaded {
            model: None,
            report: cx.report,
        };
    };
    let known = Known {
        profiles: &profiles,
        broken_profiles: &broken_profiles,
    };
    let (site, displays, groups) = cx.site(&site_file, raw_site, &known);
    let playlists = cx.playlists(playlist_files, &site, &displays, &groups, &profiles);

    let model = Model {
        site,
        profiles,
        displays,
        groups,
        playlists,
    };
    cx.unused_displays(&model, &site_file);
    cx.report.sort();
    let model = (!cx.report.has_errors()).then_some(model);
    Loaded {
        model,
        report: cx.report,
    }
}

/// `gongkai-<ASCII letters and digits of the site name>`, or `gongkai-<hash>` for a name
/// without any (FNV-1a, stable across versions and machines).
fn default_client_id(site: &str) -> String {
    let ascii: String = site.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if !ascii.is_empty() {
        return format!("gongkai-{ascii}");
    }
    let hash = site.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("gongkai-{:08x}", hash >> 32)
}

/// A profile's id is its file name without the extension.
fn profile_id(file: &str) -> String {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .unwrap_or(name)
        .to_owned()
}

struct Known<'a> {
    profiles: &'a [Profile],
    /// Profiles whose file exists but did not parse: references to them are not reported again.
    broken_profiles: &'a HashSet<String>,
}

struct Checker {
    report: Report,
    fonts: HashSet<String>,
    /// Display ids and group names written in the site file whose displays were left out of the
    /// model because of an error already reported: targets naming them are not reported again.
    dropped_names: HashSet<String>,
    /// The site file has an `sms:` section (valid or not): items with the sms channel are then
    /// not reported again for its absence.
    sms_section: bool,
    /// Each template gateway's variables and the site's `read_more`, to check every sms item's
    /// fields against the caps the provider approved.
    sms_caps: Vec<(String, String, Vec<crate::sms::bulletin::TemplateVar>)>,
}

/// Ids appear in commands, MQTT topics and URLs: ASCII letters, digits, `-`, `_`, `.`.
fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Checker {
    fn parse<T: DeserializeOwned>(&mut self, file: SourceFile) -> Option<(String, T)> {
        let result = serde_saphyr::from_str::<T>(&file.text);
        if let Err(error) = &result {
            self.report
                .push(yaml_errors::diagnostic(&file.name, &file.text, error));
        }
        self.report.add_source(&file.name, file.text);
        result.ok().map(|value| (file.name, value))
    }

    fn pos<T>(&self, file: &str, at: &Located<T>) -> Pos {
        Pos::new(file, at.line(), at.col(), at.len())
    }

    fn error<T>(&mut self, file: &str, at: &Located<T>, message: Msg) -> &mut Diagnostic {
        let pos = self.pos(file, at);
        self.report.push(Diagnostic::error(pos, message));
        self.report.diagnostics.last_mut().expect("just pushed")
    }

    fn warning<T>(&mut self, file: &str, at: &Located<T>, message: Msg) -> &mut Diagnostic {
        let pos = self.pos(file, at);
        self.report.push(Diagnostic::warning(pos, message));
        self.report.diagnostics.last_mut().expect("just pushed")
    }

    fn check_id(&mut self, file: &str, id: &Located<String>, what: &'static str) {
        if !is_valid_id(id) {
            self.error(
                file,
                id,
                Msg::new("check.bad_id")
                    .arg("id", id.as_str())
                    .arg_msg("what", Msg::new(what)),
            )
            .hint = Some(Msg::new("check.bad_id.hint"));
        }
    }

    // -- hardware profiles ----------------------------------------------------------------

    fn profile(&mut self, id: String, file: &str, raw: RawProfile) -> Option<Profile> {
        let mut ok = true;
        if !is_valid_id(&id) {
            self.report.push(
                Diagnostic::error(
                    Pos::file(file),
                    Msg::new("check.bad_profile_file_name").arg("id", &id),
                )
                .with_hint(Msg::new("check.bad_id.hint")),
            );
            ok = false;
        }
        for (dimension, value) in
            [(&raw.width, "width"), (&raw.height, "height")].map(|(v, n)| (n, v))
        {
            if **value == 0 || **value > 16_384 {
                self.error(
                    file,
                    value,
                    Msg::new("check.bad_dimension")
                        .arg("field", dimension)
                        .arg("value", **value),
                );
                ok = false;
            }
        }
        let font = self.font(file, &raw);
        let protocol = *raw.protocol;
        let pixel_stream = matches!(protocol, Protocol::Tpm2 | Protocol::Adalight);
        if pixel_stream && raw.pixel != PixelFormat::Rgb888 {
            self.error(file, &raw.protocol, Msg::new("check.stream_needs_rgb888"));
            ok = false;
        }
        if protocol == Protocol::Bx5k
            && matches!(raw.pixel, PixelFormat::Rgb565 | PixelFormat::Rgb888)
        {
            self.error(file, &raw.protocol, Msg::new("check.bx5k_colours"));
            ok = false;
        }
        let wiring = match (&raw.wiring, pixel_stream) {
            (Some(w), _) => Some(Wiring {
                layout: w.layout,
                origin: w.origin,
                order: w.order,
            }),
            (None, true) => {
                self.error(file, &raw.protocol, Msg::new("check.stream_needs_wiring"))
                    .hint = Some(Msg::new("check.stream_needs_wiring.hint"));
                ok = false;
                None
            }
            (None, false) => None,
        };
        let brightness = match &raw.brightness {
            Some(b) if b.min > *b.max => {
                self.error(
                    file,
                    &b.max,
                    Msg::new("check.brightness_range")
                        .arg("min", b.min)
                        .arg("max", *b.max),
                );
                ok = false;
                0..=0
            }
            Some(b) => b.min..=*b.max,
            None => 0..=15,
        };
        let margin = raw.layout.margin.as_ref().map(|m| **m);
        if let Some(m) = &raw.layout.margin
            && m.saturating_mul(2) >= *raw.width
        {
            self.error(
                file,
                m,
                Msg::new("check.margin_too_wide")
                    .arg("margin", **m)
                    .arg("width", *raw.width),
            );
            ok = false;
        }
        // The board protocol carries the buffer size in 16 bits and needs room for a chunk
        // header and at least a few bytes of payload (docs/protocol.md §1.5).
        if let Some(buffer) = raw.serial.as_ref().and_then(|s| s.buffer.as_ref())
            && !(64..=65_535).contains(&**buffer)
        {
            self.error(
                file,
                buffer,
                Msg::new("check.buffer_range").arg("value", **buffer),
            );
            ok = false;
        }
        let font = font?;
        ok.then(|| Profile {
            name: raw.name.unwrap_or_else(|| id.clone()),
            file: file.to_owned(),
            id,
            width: *raw.width,
            height: *raw.height,
            pixel: raw.pixel,
            led_color: raw.led_color.unwrap_or(LedColor::Red),
            font,
            protocol,
            bauds: raw
                .serial
                .as_ref()
                .map(|s| s.bauds.clone())
                .unwrap_or_default(),
            buffer: raw
                .serial
                .as_ref()
                .and_then(|s| s.buffer.as_ref().map(|b| **b)),
            local_pages: raw.local_playback.pages,
            local_scroll: raw.local_playback.scroll,
            brightness,
            wiring,
            zones: Zones {
                title: raw.layout.title.unwrap_or_default(),
                clock: raw.layout.clock.unwrap_or_default(),
                line_spacing: raw.layout.line_spacing.unwrap_or(0),
                margin: margin.unwrap_or(0),
            },
        })
    }

    fn font(&mut self, file: &str, raw: &RawProfile) -> Option<FontRef> {
        let name = raw.font.trim();
        if let Some(builtin) = BuiltinFont::from_name(name) {
            if let Some(size) = &raw.font_size {
                self.warning(
                    file,
                    size,
                    Msg::new("check.font_size_ignored").arg("font", name),
                );
            }
            return Some(FontRef::Builtin(builtin));
        }
        let path = if name.starts_with("fonts/") {
            name.to_owned()
        } else {
            format!("fonts/{name}")
        };
        let extension = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        let scalable = extension == "ttf" || extension == "otf";
        if !(scalable || extension == "bdf") || !self.fonts.contains(&path) {
            let builtins = BuiltinFont::ALL.iter().map(|(n, _)| *n);
            let suggestion = closest(name, builtins.chain(self.fonts.iter().map(|f| f.as_str())))
                .map(str::to_owned);
            let names: Vec<&str> = BuiltinFont::ALL.iter().map(|(n, _)| *n).collect();
            let diagnostic = self.error(
                file,
                &raw.font,
                Msg::new("check.unknown_font").arg("font", name),
            );
            diagnostic.hint = Some(match suggestion {
                Some(best) => Msg::new("diag.hint.did_you_mean").arg("name", best),
                None => Msg::new("check.unknown_font.hint").arg("list", names.join(", ")),
            });
            return None;
        }
        let size = raw.font_size.as_ref().map(|s| **s);
        if scalable && size.is_none() {
            self.error(
                file,
                &raw.font,
                Msg::new("check.font_size_missing").arg("font", name),
            );
            return None;
        }
        Some(FontRef::File { path, size })
    }

    // -- the site file ----------------------------------------------------------------------

    fn site(
        &mut self,
        file: &str,
        raw: RawSite,
        known: &Known<'_>,
    ) -> (Site, Vec<Display>, BTreeMap<String, Vec<DisplayIdx>>) {
        if raw.site.trim().is_empty() {
            self.error(
                file,
                &raw.site,
                Msg::new("check.empty").arg("field", "site"),
            );
        }
        let timezone = match &raw.timezone {
            None => DEFAULT_TIMEZONE,
            Some(name) => match Tz::from_str(name.trim()) {
                Ok(tz) => tz,
                Err(_) => {
                    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
                    let hint = match closest(name, names) {
                        Some(best) => Msg::new("diag.hint.did_you_mean").arg("name", best),
                        None => Msg::new("check.unknown_timezone.hint"),
                    };
                    self.error(
                        file,
                        name,
                        Msg::new("check.unknown_timezone").arg("name", name.as_str()),
                    )
                    .hint = Some(hint);
                    DEFAULT_TIMEZONE
                }
            },
        };
        let mqtt = raw
            .mqtt
            .as_ref()
            .and_then(|m| self.mqtt(file, m, &raw.site));
        self.sms_section = raw.sms.is_some();
        let sms = raw.sms.as_ref().and_then(|s| self.sms(file, s));
        let admin = match &raw.admin {
            Some(listener) => self.listener(file, listener),
            None => SocketAddr::from_str(DEFAULT_ADMIN)
                .ok()
                .map(|addr| Listener { addr, token: None }),
        };
        let public = raw.public.as_ref().and_then(|l| self.listener(file, l));
        let alerts = raw.alerts.as_ref().and_then(|a| {
            super::alerts::check(file, a, raw.sms.is_some(), sms.as_ref(), &mut self.report)
        });

        let (displays, groups) =
            // A broken `mqtt:` section is reported once, not again for every MQTT display.
            self.displays(file, &raw.displays, known, raw.mqtt.is_some(), timezone);
        let fallback_admin = Listener {
            addr: SocketAddr::from(([127, 0, 0, 1], 8640)),
            token: None,
        };
        let site = Site {
            name: raw.site.trim().to_owned(),
            timezone,
            simulate: raw.simulate,
            mqtt,
            sms,
            admin: admin.unwrap_or(fallback_admin),
            public,
            review: self.review(file, raw.review.as_ref()),
            retention: self.retention(file, raw.retention.as_ref()),
            alerts,
        };
        (site, displays, groups)
    }

    // -- sms ---------------------------------------------------------------------------------

    fn sms(&mut self, file: &str, s: &raw::RawSms) -> Option<Sms> {
        use crate::sms::bulletin::{self, Field, Template, TemplateVar};
        let errors_before = self.report.errors();
        let signature = s.signature.trim();
        if signature.is_empty() || signature.contains(['【', '】']) {
            self.error(file, &s.signature, Msg::new("check.sms_signature"));
        }
        let read_more = s
            .read_more
            .as_ref()
            .map(|r| r.trim().to_owned())
            .unwrap_or_default();
        let parts = match &s.parts {
            Some(p) if **p == 0 => {
                self.error(file, p, Msg::new("sms.check.zero").arg("field", "parts"));
                1
            }
            Some(p) => **p,
            None => 2,
        };
        let daily_cap = match &s.daily_cap {
            Some(c) if **c == 0 => {
                self.error(
                    file,
                    c,
                    Msg::new("sms.check.zero").arg("field", "daily_cap"),
                );
                1
            }
            Some(c) => **c,
            None => 5,
        };
        let mut default_template = if read_more.is_empty() {
            bulletin::DEFAULT_TEMPLATE.to_owned()
        } else {
            bulletin::DEFAULT_TEMPLATE_WITH_URL.to_owned()
        };
        let mut templates = BTreeMap::new();
        for (key, text) in &s.templates {
            let category = if key == "default" {
                None
            } else {
                match crate::sms::subscribers::category(key.trim()) {
                    Some(c) => Some(c),
                    None => {
                        self.error(
                            file,
                            text,
                            Msg::new("sms.check.template_category").arg("name", key),
                        )
                        .hint = Some(Msg::new("sms.check.template_category.hint"));
                        continue;
                    }
                }
            };
            if let Err(e) = Template::for_fields(text) {
                self.template_error(file, text, &e);
                continue;
            }
            if text.contains("{url}") && read_more.is_empty() {
                self.error(file, text, Msg::new("sms.check.url_without_read_more"));
                continue;
            }
            match category {
                Some(c) => {
                    templates.insert(c, text.to_string());
                }
                None => default_template = text.to_string(),
            }
        }
        let quiet_hours = match &s.quiet_hours {
            Some(q) => {
                let from = self.clock_time(file, &q.from);
                let until = self.clock_time(file, &q.until);
                QuietHours {
                    from: from.unwrap_or_default(),
                    until: until.unwrap_or_default(),
                }
            }
            None => QuietHours {
                from: chrono::NaiveTime::from_hms_opt(21, 0, 0).unwrap_or_default(),
                until: chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            },
        };

        let mut gateways: Vec<SmsGateway> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for g in &s.gateways {
            self.check_id(file, &g.id, "sms.what.gateway");
            if !seen.insert(g.id.trim().to_owned()) {
                self.error(
                    file,
                    &g.id,
                    Msg::new("sms.check.duplicate_gateway").arg("id", g.id.as_str()),
                );
                continue;
            }
            let kind = *g.kind;
            let mut missing: Vec<&'static str> = Vec::new();
            let mut need = |value: &Option<String>, name: &'static str| -> String {
                match value.as_deref().map(str::trim) {
                    Some(v) if !v.is_empty() => v.to_owned(),
                    _ => {
                        missing.push(name);
                        String::new()
                    }
                }
            };
            let url = g.url.as_ref().map(|u| u.trim().to_owned());
            let built = match kind {
                raw::GatewayKind::Outbox => SmsGatewayKind::Outbox,
                raw::GatewayKind::Yunmas => {
                    SmsGatewayKind::YunMas(crate::sms::gateways::yunmas::YunMas {
                        base_url: need(&url, "url"),
                        ec_name: need(&g.ec_name, "ec_name"),
                        ap_id: need(&g.ap_id, "ap_id"),
                        sign_code: need(&g.sign_code, "sign_code"),
                        add_serial: g.add_serial.clone().unwrap_or_default(),
                        secret_in_body: g.secret_in_body.unwrap_or(true),
                    })
                }
                raw::GatewayKind::Aliyun => {
                    SmsGatewayKind::Aliyun(crate::sms::gateways::aliyun::Aliyun {
                        endpoint: url.clone().unwrap_or_else(|| {
                            crate::sms::gateways::aliyun::DEFAULT_ENDPOINT.to_owned()
                        }),
                        access_key_id: need(&g.access_key_id, "access_key_id"),
                        region: g.region.clone().unwrap_or_else(|| "cn-hangzhou".to_owned()),
                    })
                }
                raw::GatewayKind::Tencent => {
                    let (scheme, host) = match url.as_deref().and_then(|u| u.split_once("://")) {
                        Some((scheme, host)) => {
                            (scheme.to_owned(), host.trim_end_matches('/').to_owned())
                        }
                        None => (
                            "https".to_owned(),
                            crate::sms::gateways::tencent::DEFAULT_HOST.to_owned(),
                        ),
                    };
                    SmsGatewayKind::Tencent(crate::sms::gateways::tencent::Tencent {
                        host,
                        scheme,
                        region: g
                            .region
                            .clone()
                            .unwrap_or_else(|| "ap-guangzhou".to_owned()),
                        secret_id: need(&g.secret_id, "secret_id"),
                        sdk_app_id: need(&g.sdk_app_id, "sdk_app_id"),
                    })
                }
                raw::GatewayKind::Kannel => {
                    SmsGatewayKind::Kannel(crate::sms::gateways::kannel::Kannel {
                        base_url: need(&url, "url"),
                        username: need(&g.username, "username"),
                        from: g.from.clone().unwrap_or_default(),
                        dlr_url: g.dlr_url.clone().unwrap_or_default(),
                        dlr_mask: 31,
                    })
                }
            };
            for field in &missing {
                self.error(
                    file,
                    &g.kind,
                    Msg::new("sms.check.gateway_missing").arg("field", field),
                );
            }
            if let Some(u) = &g.url
                && !(u.trim().starts_with("http://") || u.trim().starts_with("https://"))
            {
                self.error(
                    file,
                    u,
                    Msg::new("sms.check.gateway_url").arg("url", u.trim()),
                );
            }
            let secret = self.secret(file, &g.secret_env, &g.secret_file);
            if secret.is_none()
                && kind != raw::GatewayKind::Outbox
                && g.secret_env.is_none()
                && g.secret_file.is_none()
            {
                self.error(file, &g.kind, Msg::new("sms.check.gateway_secret"))
                    .hint = Some(Msg::new("sms.check.gateway_secret.hint"));
            }
            let needs_template =
                matches!(kind, raw::GatewayKind::Aliyun | raw::GatewayKind::Tencent);
            if needs_template && g.template.is_none() {
                self.error(file, &g.kind, Msg::new("sms.check.gateway_template"));
            }
            let template = g.template.as_ref().map(|t| {
                let mut vars = Vec::new();
                for v in &t.vars {
                    let Some(field) = Field::from_name(v.field.trim()) else {
                        self.error(
                            file,
                            &v.field,
                            Msg::new("sms.check.template_field").arg("name", v.field.trim()),
                        )
                        .hint = Some(Msg::new("sms.check.template_field.hint"));
                        continue;
                    };
                    let max = match &v.max {
                        Some(m) if **m == 0 => {
                            self.error(file, m, Msg::new("sms.check.zero").arg("field", "max"));
                            continue;
                        }
                        Some(m) => **m as usize,
                        None => 35,
                    };
                    vars.push(TemplateVar {
                        name: v.name.trim().to_owned(),
                        field,
                        max,
                    });
                }
                if let Some(text) = &t.text {
                    // Every variable written counts, valid or not: one mistake, one message.
                    let names: Vec<&str> = t.vars.iter().map(|v| v.name.trim()).collect();
                    if let Err(e) = Template::parse(text, &names) {
                        self.template_error(file, text, &e);
                    }
                }
                ApprovedTemplate {
                    id: t.id.trim().to_owned(),
                    text: t.text.as_ref().map(|x| x.to_string()),
                    vars,
                }
            });
            if kind == raw::GatewayKind::Kannel && g.template.is_some() {
                self.error(file, &g.kind, Msg::new("sms.check.kannel_template"));
            }
            gateways.push(SmsGateway {
                id: g.id.trim().to_owned(),
                kind: built,
                secret,
                template,
            });
        }
        // Routing: the ids in `route` first, in that order; the others are not used.
        if !s.route.is_empty() {
            let mut ordered = Vec::new();
            for id in &s.route {
                match gateways.iter().position(|g| g.id == id.trim()) {
                    Some(at) => ordered.push(gateways[at].clone()),
                    None => {
                        let names: Vec<&str> = gateways.iter().map(|g| g.id.as_str()).collect();
                        let hint = match closest(id.trim(), names.iter().copied()) {
                            Some(best) => Msg::new("diag.hint.did_you_mean").arg("name", best),
                            None => Msg::new("sms.check.unknown_gateway.hint"),
                        };
                        self.error(
                            file,
                            id,
                            Msg::new("sms.check.unknown_gateway").arg("id", id.trim()),
                        )
                        .hint = Some(hint);
                    }
                }
            }
            gateways = ordered;
        }
        if self.report.errors() > errors_before {
            return None;
        }
        self.sms_caps = gateways
            .iter()
            .filter_map(|g| {
                let template = g.template.as_ref()?;
                Some((g.id.clone(), read_more.clone(), template.vars.clone()))
            })
            .collect();
        Some(Sms {
            signature: signature.to_owned(),
            outbox: s
                .outbox
                .clone()
                .unwrap_or_else(|| "var/sms-outbox.jsonl".to_owned()),
            read_more,
            opt_out: s
                .opt_out
                .as_ref()
                .map_or_else(|| bulletin::OPT_OUT.to_owned(), |o| o.trim().to_owned()),
            parts,
            default_template,
            templates,
            quiet_hours,
            daily_cap,
            digest: s.digest,
            gateways,
            second_approval_above: s.second_approval_above.as_ref().map_or(1000, |n| **n),
        })
    }

    // -- review and retention ----------------------------------------------------------------

    fn review(&mut self, file: &str, raw: Option<&raw::RawReview>) -> Review {
        let Some(raw) = raw else {
            return Review::default();
        };
        match crate::review::Stage::parse(&raw.required) {
            Some(required) => Review { required },
            None => {
                self.error(
                    file,
                    &raw.required,
                    Msg::new("check.review_stage").arg("value", raw.required.trim()),
                )
                .hint = Some(Msg::new("check.review_stage.hint"));
                Review::default()
            }
        }
    }

    fn retention(&mut self, file: &str, raw: Option<&raw::RawRetention>) -> Retention {
        let mut retention = Retention::default();
        let Some(raw) = raw else {
            return retention;
        };
        if let Some(audit) = &raw.audit {
            let years = audit
                .trim()
                .strip_suffix('y')
                .and_then(|n| n.trim().parse::<u32>().ok());
            match years {
                Some(years) if (1..=100).contains(&years) => retention.audit_years = years,
                _ => {
                    self.error(
                        file,
                        audit,
                        Msg::new("check.retention_years").arg("value", audit.trim()),
                    )
                    .hint = Some(Msg::new("check.retention_years.hint"));
                }
            }
        }
        if let Some(texts) = &raw.sms_texts {
            match values::parse_duration(texts) {
                Ok(d) if d >= std::time::Duration::from_secs(86_400) => retention.sms_texts = d,
                _ => {
                    self.error(
                        file,
                        texts,
                        Msg::new("check.retention_texts").arg("value", texts.trim()),
                    )
                    .hint = Some(Msg::new("check.retention_texts.hint"));
                }
            }
        }
        retention
    }

    /// A control character or a bidirectional control in an item's title or body: nothing
    /// invisible may reorder or hide what a board, a kiosk or a phone shows
    /// (`layout::markup::is_hidden_control`). The first one of each field is reported, at its
    /// own column when the value is written on one line as it reads, else at the field.
    fn check_item_text(&mut self, file: &str, raw: &RawItem) {
        let fields = [
            ("field.title", Some(&raw.title)),
            ("field.body", raw.body.as_ref()),
        ];
        for (field, at) in fields {
            let Some(at) = at else { continue };
            let Some((index, c)) = at
                .chars()
                .enumerate()
                .find(|&(_, c)| crate::layout::markup::is_hidden_control(c))
            else {
                continue;
            };
            let msg = Msg::new("check.text_control")
                .arg("code", format!("U+{:04X}", u32::from(c)))
                .arg_msg("field", Msg::new(field))
                .arg("index", index + 1)
                .arg("item", raw.id.as_str());
            let count = at.chars().count() as u32;
            let one_line = !at.contains('\n');
            let diagnostic = self.error(file, at, msg);
            let quote = match diagnostic.pos.len {
                len if len == count => Some(0),
                len if len == count + 2 => Some(1),
                _ => None,
            };
            if let (Some(quote), true) = (quote, one_line) {
                diagnostic.pos.col += quote + index as u32;
                diagnostic.pos.len = 1;
            }
            diagnostic.hint = Some(Msg::new("check.text_control.hint"));
        }
    }

    /// An sms item whose fields do not fit an approved template's variables: the provider would
    /// refuse every message of it. Reported at the title when the title is too long.
    fn check_sms_caps(&mut self, file: &str, raw: &RawItem) {
        let caps = std::mem::take(&mut self.sms_caps);
        for (gateway, read_more, vars) in &caps {
            let fields = crate::sms::bulletin::Fields {
                title: raw.title.to_string(),
                body: raw.body.as_ref().map(|b| b.to_string()).unwrap_or_default(),
                url: read_more.clone(),
                department: raw.department.clone().unwrap_or_default(),
                category: raw.category.name().to_owned(),
            };
            if let Err(e) = crate::sms::bulletin::template_params(vars, &fields) {
                let msg = Msg::new("sms.check.template_cap")
                    .arg("gateway", gateway)
                    .arg("name", &e.name)
                    .arg("len", e.len)
                    .arg("max", e.max);
                let on_title = vars
                    .iter()
                    .any(|v| v.name == e.name && v.field == crate::sms::bulletin::Field::Title);
                let diagnostic = if on_title {
                    self.error(file, &raw.title, msg)
                } else {
                    self.error(file, &raw.id, msg)
                };
                diagnostic.hint = Some(Msg::new("sms.check.template_cap.hint"));
            }
        }
        self.sms_caps = caps;
    }

    fn template_error(
        &mut self,
        file: &str,
        at: &Located<String>,
        error: &crate::sms::bulletin::TemplateError,
    ) {
        use crate::sms::bulletin::TemplateError;
        let msg = match error {
            TemplateError::Unknown { name, .. } => {
                Msg::new("sms.check.template_unknown").arg("name", name)
            }
            TemplateError::Unclosed { .. } => Msg::new("sms.check.template_unclosed"),
            TemplateError::StrayClose { .. } => Msg::new("sms.check.template_stray"),
        };
        self.error(file, at, msg).hint = Some(Msg::new("sms.check.template.hint"));
    }

    fn clock_time(&mut self, file: &str, at: &Located<String>) -> Option<chrono::NaiveTime> {
        match chrono::NaiveTime::parse_from_str(at.trim(), "%H:%M") {
            Ok(t) => Some(t),
            Err(_) => {
                self.error(
                    file,
                    at,
                    Msg::new("sms.check.clock_time").arg("value", at.trim()),
                );
                None
            }
        }
    }

    fn secret(
        &mut self,
        file: &str,
        env: &Option<Located<String>>,
        path: &Option<Located<String>>,
    ) -> Option<SecretSource> {
        match (env, path) {
            (Some(_), Some(path)) => {
                self.error(file, path, Msg::new("check.two_secret_sources"));
                None
            }
            (Some(env), None) => Some(SecretSource::Env(env.trim().to_owned())),
            (None, Some(path)) => Some(SecretSource::File(path.trim().to_owned())),
            (None, None) => None,
        }
    }

    fn mqtt(&mut self, file: &str, raw: &raw::RawMqtt, site: &Located<String>) -> Option<Mqtt> {
        let url = raw.broker.trim();
        let (tls, rest) =
            if let Some(rest) = url.strip_prefix("mqtts://").or(url.strip_prefix("ssl://")) {
                (true, rest)
            } else if let Some(rest) = url.strip_prefix("mqtt://").or(url.strip_prefix("tcp://")) {
                (false, rest)
            } else {
                self.error(
                    file,
                    &raw.broker,
                    Msg::new("check.mqtt_url").arg("url", url),
                )
                .hint = Some(Msg::new("check.mqtt_url.hint"));
                return None;
            };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                match port.parse::<u16>() {
                    Ok(port) => (host, port),
                    Err(_) => {
                        self.error(
                            file,
                            &raw.broker,
                            Msg::new("check.mqtt_url").arg("url", url),
                        )
                        .hint = Some(Msg::new("check.mqtt_url.hint"));
                        return None;
                    }
                }
            }
            _ => (rest, default_port),
        };
        if host.is_empty() {
            self.error(
                file,
                &raw.broker,
                Msg::new("check.mqtt_url").arg("url", url),
            )
            .hint = Some(Msg::new("check.mqtt_url.hint"));
            return None;
        }
        let topic_prefix = raw
            .topic_prefix
            .as_ref()
            .map_or("gongkai", |p| p.trim())
            .trim_matches('/')
            .to_owned();
        if let Some(prefix) = &raw.topic_prefix
            && (topic_prefix.is_empty() || topic_prefix.contains(['+', '#']))
        {
            self.error(
                file,
                prefix,
                Msg::new("check.mqtt_topic").arg("topic", prefix.as_str()),
            );
        }
        let password = self.secret(file, &raw.password_env, &raw.password_file);
        let ca_file = match &raw.ca_file {
            Some(path) if !tls => {
                self.error(file, path, Msg::new("check.mqtt_ca_without_tls"))
                    .hint = Some(Msg::new("check.mqtt_ca_without_tls.hint"));
                None
            }
            Some(path) if path.trim().is_empty() => {
                self.error(file, path, Msg::new("check.empty").arg("field", "ca_file"));
                None
            }
            Some(path) => Some(path.trim().to_owned()),
            None => None,
        };
        // Two sites on one broker must not share a client id (the broker would disconnect one
        // of them), so a site name without ASCII letters is identified by a hash of it.
        let client_id = raw
            .client_id
            .clone()
            .unwrap_or_else(|| default_client_id(site));
        Some(Mqtt {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            tls,
            client_id,
            topic_prefix,
            username: raw.username.clone(),
            password,
            ca_file,
        })
    }

    fn listener(&mut self, file: &str, raw: &raw::RawListener) -> Option<Listener> {
        let addr = match SocketAddr::from_str(raw.listen.trim()) {
            Ok(addr) => addr,
            Err(_) => {
                self.error(
                    file,
                    &raw.listen,
                    Msg::new("check.listen").arg("addr", raw.listen.as_str()),
                )
                .hint = Some(Msg::new("check.listen.hint"));
                return None;
            }
        };
        let token = self.secret(file, &raw.token_env, &raw.token_file);
        if !addr.ip().is_loopback() && token.is_none() {
            self.error(
                file,
                &raw.listen,
                Msg::new("check.listen_needs_token").arg("addr", addr),
            )
            .hint = Some(Msg::new("check.listen_needs_token.hint"));
        }
        Some(Listener { addr, token })
    }

    fn displays(
        &mut self,
        file: &str,
        raw: &[RawDisplay],
        known: &Known<'_>,
        have_mqtt: bool,
        timezone: Tz,
    ) -> (Vec<Display>, BTreeMap<String, Vec<DisplayIdx>>) {
        let mut displays = Vec::with_capacity(raw.len());
        let mut first_seen: HashMap<&str, u32> = HashMap::new();
        let display_ids: HashSet<&str> = raw.iter().map(|d| d.id.as_str()).collect();
        let mut groups: BTreeMap<String, Vec<DisplayIdx>> = BTreeMap::new();
        // Serial port → (baud, its position, addresses in use).
        let mut buses: HashMap<String, Bus> = HashMap::new();

        for d in raw {
            self.check_id(file, &d.id, "what.display");
            if let Some(line) = first_seen.insert(d.id.as_str(), d.id.line()) {
                self.dropped_names.insert(d.id.to_string());
                self.error(
                    file,
                    &d.id,
                    Msg::new("check.duplicate_id").arg("id", d.id.as_str()),
                )
                .hint = Some(
                    Msg::new("check.duplicate_id.hint").arg("place", format!("{file}:{line}")),
                );
                continue;
            }
            let profile = known.profiles.iter().position(|p| p.id == *d.profile);
            if profile.is_none() && !known.broken_profiles.contains(d.profile.as_str()) {
                let names = known.profiles.iter().map(|p| p.id.as_str());
                let hint = match closest(&d.profile, names) {
                    Some(best) => Msg::new("diag.hint.did_you_mean").arg("name", best),
                    None => Msg::new("check.unknown_profile.hint")
                        .arg("file", format!("hw-profiles/{}.yaml", *d.profile)),
                };
                self.error(
                    file,
                    &d.profile,
                    Msg::new("check.unknown_profile").arg("name", d.profile.as_str()),
                )
                .hint = Some(hint);
            }
            let link = self.link(
                file,
                d,
                profile.map(|p| &known.profiles[p]),
                have_mqtt,
                &mut buses,
            );
            let mut display_groups = Vec::new();
            for group in &d.groups {
                if !is_valid_id(group) {
                    self.check_id(file, group, "what.group");
                } else if display_ids.contains(group.as_str()) {
                    self.error(
                        file,
                        group,
                        Msg::new("check.group_is_display").arg("name", group.as_str()),
                    );
                } else if !display_groups.iter().any(|g| g == group.as_str()) {
                    display_groups.push(group.to_string());
                }
            }
            let brightness = self.brightness_points(file, d, profile.map(|p| &known.profiles[p]));
            let power_off: Vec<Window> = d
                .power_off
                .iter()
                .filter_map(|w| self.window(file, w, timezone))
                .collect();
            let (Some(profile), Some(link)) = (profile, link) else {
                self.dropped_names.insert(d.id.to_string());
                self.dropped_names.extend(display_groups);
                continue;
            };
            let index = displays.len();
            for group in &display_groups {
                groups.entry(group.clone()).or_default().push(index);
            }
            displays.push(Display {
                id: d.id.to_string(),
                name: d.name.clone().unwrap_or_else(|| d.id.to_string()),
                location: d.location.clone(),
                profile,
                // Kept as configured even when the site simulates: previews pace frames by it,
                // and `Model::effective_link` says what the daemon drives.
                link,
                groups: display_groups,
                brightness,
                power_off,
                line: d.id.line(),
                col: d.id.col(),
            });
        }
        (displays, groups)
    }

    /// A display's brightness points: each cron parses and each level is one the board has.
    fn brightness_points(
        &mut self,
        file: &str,
        d: &RawDisplay,
        profile: Option<&Profile>,
    ) -> Vec<BrightnessPoint> {
        let mut points = Vec::with_capacity(d.brightness.len());
        for point in &d.brightness {
            let cron = match values::parse_cron(&point.cron) {
                Ok(cron) => Some(cron),
                Err(problem) => {
                    self.cron_problem(file, &point.cron, problem);
                    None
                }
            };
            let mut level_ok = true;
            if let Some(profile) = profile
                && !profile.brightness.contains(&*point.level)
            {
                self.error(
                    file,
                    &point.level,
                    Msg::new("schedule.check.brightness_level")
                        .arg("level", *point.level)
                        .arg("profile", &profile.id),
                )
                .hint = Some(
                    Msg::new("schedule.check.brightness_level.hint")
                        .arg("min", profile.brightness.start())
                        .arg("max", profile.brightness.end()),
                );
                level_ok = false;
            }
            if let (Some(cron), true) = (cron, level_ok) {
                points.push(BrightnessPoint {
                    cron_text: point.cron.trim().to_owned(),
                    cron,
                    level: *point.level,
                });
            }
        }
        points
    }

    fn link(
        &mut self,
        file: &str,
        d: &RawDisplay,
        profile: Option<&Profile>,
        have_mqtt: bool,
        buses: &mut HashMap<String, Bus>,
    ) -> Option<Link> {
        let link = &d.link;
        let kinds = [
            link.serial.is_some(),
            link.mqtt.is_some(),
            link.simulated.as_ref().is_some_and(|s| **s),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.error(file, link, Msg::new("check.link_kind")).hint =
                Some(Msg::new("check.link_kind.hint"));
            return None;
        }
        let Some(port) = &link.serial else {
            // `baud` and `address` belong to serial links only: written elsewhere they are a
            // sign of a half-edited link, not something to ignore.
            let mut ok = true;
            for (field, at) in [("baud", &link.baud), ("address", &link.address)] {
                if let Some(at) = at {
                    self.error(file, at, Msg::new("check.link_extra").arg("field", field));
                    ok = false;
                }
            }
            let Some(topic) = &link.mqtt else {
                return ok.then_some(Link::Simulated);
            };
            let trimmed = topic.trim().trim_matches('/');
            if trimmed.is_empty() || trimmed.contains(['+', '#']) {
                self.error(
                    file,
                    topic,
                    Msg::new("check.mqtt_topic").arg("topic", topic.as_str()),
                );
                return None;
            }
            if !have_mqtt {
                self.error(file, topic, Msg::new("check.mqtt_missing")).hint =
                    Some(Msg::new("check.mqtt_missing.hint"));
                return None;
            }
            return ok.then(|| Link::Mqtt {
                topic: trimmed.to_owned(),
            });
        };
        // TPM2 and Adalight carry no address; everything else on a serial line does.
        let addressable =
            profile.is_none_or(|p| matches!(p.protocol, Protocol::Gongkai | Protocol::Bx5k));
        let Some(baud) = &link.baud else {
            self.error(file, link, Msg::new("check.serial_incomplete"))
                .hint = Some(Msg::new("check.link_kind.hint"));
            return None;
        };
        if addressable && link.address.is_none() {
            self.error(file, link, Msg::new("check.serial_incomplete"))
                .hint = Some(Msg::new("check.link_kind.hint"));
            return None;
        }
        let mut ok = true;
        if let Some(profile) = profile {
            if profile.protocol == Protocol::Png {
                self.error(
                    file,
                    port,
                    Msg::new("check.png_over_serial").arg("profile", &profile.id),
                );
                ok = false;
            } else if profile.bauds.is_empty() {
                self.error(
                    file,
                    port,
                    Msg::new("check.profile_no_serial").arg("profile", &profile.id),
                );
                ok = false;
            } else if !profile.bauds.contains(baud) {
                let list: Vec<String> = profile.bauds.iter().map(u32::to_string).collect();
                self.error(
                    file,
                    baud,
                    Msg::new("check.baud_unsupported")
                        .arg("baud", **baud)
                        .arg("profile", &profile.id),
                )
                .hint = Some(Msg::new("check.baud_unsupported.hint").arg("list", list.join(", ")));
                ok = false;
            }
        }
        let mut address = None;
        if let Some(at) = &link.address {
            match u8::try_from(**at) {
                Ok(a) if (1..=254).contains(&a) => address = Some(a),
                _ => {
                    self.error(
                        file,
                        at,
                        Msg::new("check.address_range").arg("address", **at),
                    );
                    ok = false;
                }
            }
        }
        let key = port.trim().to_owned();
        let Some(bus) = buses.get_mut(&key) else {
            let addresses = address
                .map(|a| HashMap::from([(a, d.id.to_string())]))
                .unwrap_or_default();
            let first = format!("{file}:{}", port.line());
            buses.insert(
                key.clone(),
                Bus {
                    baud: **baud,
                    first,
                    addresses,
                    addressable,
                },
            );
            return ok.then_some(Link::Serial {
                port: key,
                baud: **baud,
                address,
            });
        };
        if bus.baud != **baud {
            self.error(
                file,
                baud,
                Msg::new("check.bus_baud")
                    .arg("port", &key)
                    .arg("baud", bus.baud),
            )
            .hint = Some(Msg::new("check.bus_first").arg("place", &bus.first));
            ok = false;
        }
        if !(bus.addressable && addressable) {
            self.error(
                file,
                port,
                Msg::new("check.bus_not_addressable").arg("port", &key),
            )
            .hint = Some(Msg::new("check.bus_first").arg("place", &bus.first));
            ok = false;
        }
        if let (Some(a), Some(at)) = (address, &link.address) {
            if let Some(other) = bus.addresses.get(&a) {
                self.error(
                    file,
                    at,
                    Msg::new("check.bus_address_taken")
                        .arg("address", a)
                        .arg("other", other),
                );
                ok = false;
            } else {
                bus.addresses.insert(a, d.id.to_string());
            }
        }
        ok.then_some(Link::Serial {
            port: key,
            baud: **baud,
            address,
        })
    }

    // -- playlists ---------------------------------------------------------------------------

    fn playlists(
        &mut self,
        files: Vec<(String, RawPlaylist)>,
        site: &Site,
        displays: &[Display],
        groups: &BTreeMap<String, Vec<DisplayIdx>>,
        profiles: &[Profile],
    ) -> Vec<Playlist> {
        let mut playlists = Vec::with_capacity(files.len());
        let mut playlist_ids: HashMap<String, String> = HashMap::new();
        let mut item_ids: HashMap<String, String> = HashMap::new();
        for (file, raw) in files {
            let id_ok = is_valid_id(&raw.id);
            self.check_id(&file, &raw.id, "what.playlist");
            let place = format!("{file}:{}", raw.id.line());
            if let Some(first) = playlist_ids.insert(raw.id.to_string(), place) {
                self.error(
                    &file,
                    &raw.id,
                    Msg::new("check.duplicate_id").arg("id", raw.id.as_str()),
                )
                .hint = Some(Msg::new("check.duplicate_id.hint").arg("place", first));
            }
            let targets = self.targets(&file, &raw, displays, groups);
            let windows: Vec<Window> = raw
                .when
                .iter()
                .filter_map(|w| self.window(&file, w, site.timezone))
                .collect();
            if raw.items.is_empty() {
                self.error(
                    &file,
                    &raw.id,
                    Msg::new("check.empty_playlist").arg("id", raw.id.as_str()),
                )
                .hint = Some(Msg::new("check.empty_playlist.hint"));
            }
            let target_profiles: Vec<&Profile> = targets
                .iter()
                .map(|&d| &profiles[displays[d].profile])
                .collect();
            let default_show = raw
                .show
                .as_ref()
                .map(|s| self.show(&file, s, Show::default()))
                .unwrap_or_default();
            let mut items = Vec::with_capacity(raw.items.len());
            for item in &raw.items {
                let place = format!("{file}:{}", item.id.line());
                if let Some(first) = item_ids.insert(item.id.to_string(), place) {
                    self.error(
                        &file,
                        &item.id,
                        Msg::new("check.duplicate_id").arg("id", item.id.as_str()),
                    )
                    .hint = Some(Msg::new("check.duplicate_id.hint").arg("place", first));
                }
                if let Some(item) = self.item(&file, item, site, default_show, &target_profiles) {
                    items.push(item);
                }
            }
            if id_ok {
                playlists.push(Playlist {
                    id: raw.id.to_string(),
                    name: raw.name.clone().unwrap_or_else(|| raw.id.to_string()),
                    file,
                    targets,
                    windows,
                    priority: raw.priority,
                    items,
                });
            }
        }
        playlists
    }

    fn targets(
        &mut self,
        file: &str,
        raw: &RawPlaylist,
        displays: &[Display],
        groups: &BTreeMap<String, Vec<DisplayIdx>>,
    ) -> Vec<DisplayIdx> {
        if raw.targets.is_empty() {
            self.error(
                file,
                &raw.id,
                Msg::new("check.no_targets").arg("id", raw.id.as_str()),
            )
            .hint = Some(Msg::new("check.no_targets.hint"));
            return Vec::new();
        }
        let mut resolved = Vec::new();
        for target in &raw.targets {
            let name = target.trim();
            let found: Vec<DisplayIdx> = match displays.iter().position(|d| d.id == name) {
                Some(index) => vec![index],
                None => match groups.get(name) {
                    Some(members) => members.clone(),
                    None if self.dropped_names.contains(name) => continue,
                    None => {
                        let candidates = displays
                            .iter()
                            .map(|d| d.id.as_str())
                            .chain(groups.keys().map(String::as_str));
                        let hint = match closest(name, candidates) {
                            Some(best) => Msg::new("diag.hint.did_you_mean").arg("name", best),
                            None => Msg::new("check.unknown_target.hint"),
                        };
                        self.error(
                            file,
                            target,
                            Msg::new("check.unknown_target").arg("name", name),
                        )
                        .hint = Some(hint);
                        continue;
                    }
                },
            };
            for index in found {
                if !resolved.contains(&index) {
                    resolved.push(index);
                }
            }
        }
        resolved.sort_unstable();
        resolved
    }

    fn window(&mut self, file: &str, raw: &raw::RawWindow, tz: Tz) -> Option<Window> {
        let cron = match values::parse_cron(&raw.cron) {
            Ok(cron) => Some(cron),
            Err(problem) => {
                self.cron_problem(file, &raw.cron, problem);
                None
            }
        };
        let duration = match values::parse_duration(&raw.duration) {
            Ok(d) if d.is_zero() => {
                self.error(
                    file,
                    &raw.duration,
                    Msg::new("check.window_empty").arg("value", raw.duration.as_str()),
                )
                .hint = Some(Msg::new("check.duration.hint"));
                None
            }
            Ok(d) => Some(d),
            Err(DurationError::Negative) => {
                self.error(
                    file,
                    &raw.duration,
                    Msg::new("check.window_negative").arg("value", raw.duration.as_str()),
                )
                .hint = Some(Msg::new("check.duration.hint"));
                None
            }
            Err(_) => {
                self.error(
                    file,
                    &raw.duration,
                    Msg::new("check.bad_duration").arg("value", raw.duration.as_str()),
                )
                .hint = Some(Msg::new("check.duration.hint"));
                None
            }
        };
        let dates = raw
            .dates
            .as_ref()
            .map(|v| self.validity(file, v, tz))
            .unwrap_or_default();
        Some(Window {
            cron_text: raw.cron.trim().to_owned(),
            cron: cron?,
            duration: duration?,
            dates,
        })
    }

    /// Points into the cron string at the field that is wrong.
    fn cron_problem(&mut self, file: &str, at: &Located<String>, problem: CronProblem) {
        let mut pos = self.pos(file, at);
        if let Some((offset, len)) = problem.span() {
            // A quoted scalar's span includes its quotes.
            let quote = u32::from(at.len() as usize == at.chars().count() + 2);
            pos.col += quote + offset as u32;
            pos.len = len as u32;
        }
        let diagnostic = Diagnostic::error(pos, problem.message(at)).with_hint(problem.hint());
        self.report.push(diagnostic);
    }

    fn validity(&mut self, file: &str, raw: &RawValidity, tz: Tz) -> Validity {
        let from = raw
            .from
            .as_ref()
            .and_then(|t| self.instant(file, t, tz, false));
        let until = raw
            .until
            .as_ref()
            .and_then(|t| self.instant(file, t, tz, true));
        if let (Some(from), Some(until), Some(at)) = (&from, &until, &raw.until)
            && until <= from
        {
            self.error(
                file,
                at,
                Msg::new("check.until_before_from").arg("until", at.as_str()),
            )
            .hint = Some(
                Msg::new("check.until_before_from.hint")
                    .arg("from", raw.from.as_ref().map_or("", |f| f.as_str())),
            );
        }
        Validity { from, until }
    }

    /// A local time in the site's zone. A bare date as `until` means the end of that day.
    fn instant(
        &mut self,
        file: &str,
        at: &Located<String>,
        tz: Tz,
        is_until: bool,
    ) -> Option<DateTime<Tz>> {
        let Some((local, date_only)) = values::parse_local_time(at) else {
            self.error(
                file,
                at,
                Msg::new("check.bad_time").arg("value", at.as_str()),
            )
            .hint = Some(Msg::new("check.bad_time.hint"));
            return None;
        };
        let local = if is_until && date_only {
            local + chrono::Duration::days(1)
        } else {
            local
        };
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t),
            LocalResult::Ambiguous(earliest, _) => Some(earliest),
            LocalResult::None => {
                self.error(
                    file,
                    at,
                    Msg::new("check.time_skipped")
                        .arg("value", at.as_str())
                        .arg("zone", tz.name()),
                );
                None
            }
        }
    }

    fn show(&mut self, file: &str, raw: &RawShow, base: Show) -> Show {
        let mut show = base;
        if let Some(mode) = raw.mode {
            show.mode = mode;
        }
        if let Some(dwell) = &raw.dwell {
            match values::parse_duration(dwell) {
                Ok(d) if !d.is_zero() => show.dwell = d,
                _ => {
                    self.error(
                        file,
                        dwell,
                        Msg::new("check.bad_duration").arg("value", dwell.as_str()),
                    )
                    .hint = Some(Msg::new("check.duration.hint"));
                }
            }
        }
        if let Some(speed) = &raw.speed {
            match values::parse_speed(speed) {
                Some(v) => show.speed = v,
                None => {
                    self.error(
                        file,
                        speed,
                        Msg::new("check.bad_speed").arg("value", speed.as_str()),
                    )
                    .hint = Some(Msg::new("check.bad_speed.hint"));
                }
            }
        }
        if let Some(passes) = &raw.passes {
            if **passes == 0 {
                self.error(file, passes, Msg::new("check.zero_passes"));
            } else {
                show.passes = **passes;
            }
        }
        show
    }

    fn item(
        &mut self,
        file: &str,
        raw: &RawItem,
        site: &Site,
        default_show: Show,
        target_profiles: &[&Profile],
    ) -> Option<Item> {
        self.check_id(file, &raw.id, "what.item");
        if raw.title.trim().is_empty() {
            self.error(
                file,
                &raw.title,
                Msg::new("check.empty").arg("field", "title"),
            );
        }
        let valid = raw
            .valid
            .as_ref()
            .map(|v| self.validity(file, v, site.timezone))
            .unwrap_or_default();
        let show = raw
            .show
            .as_ref()
            .map_or(default_show, |s| self.show(file, s, default_show));
        let color = match &raw.color {
            None => None,
            Some(text) => match values::parse_color(text) {
                Some(rgb) => {
                    let two_colour = [Rgb(255, 0, 0), Rgb(0, 255, 0), Rgb(255, 255, 0)];
                    if target_profiles
                        .iter()
                        .any(|p| p.pixel == PixelFormat::Bicolor)
                        && !two_colour.contains(&rgb)
                    {
                        self.warning(
                            file,
                            text,
                            Msg::new("check.bicolor_colour").arg("color", text.as_str()),
                        );
                    }
                    Some(rgb)
                }
                None => {
                    let names: Vec<&str> = values::COLOR_NAMES.iter().map(|(n, _)| *n).collect();
                    self.error(
                        file,
                        text,
                        Msg::new("check.bad_color").arg("value", text.as_str()),
                    )
                    .hint = Some(Msg::new("check.bad_color.hint").arg("list", names.join(", ")));
                    None
                }
            },
        };
        let at_least_every =
            raw.at_least_every
                .as_ref()
                .and_then(|every| match values::parse_duration(every) {
                    Ok(d) if !d.is_zero() => Some(d),
                    Ok(_) => {
                        self.error(
                            file,
                            every,
                            Msg::new("schedule.check.every_zero").arg("value", every.as_str()),
                        )
                        .hint = Some(Msg::new("check.duration.hint"));
                        None
                    }
                    Err(_) => {
                        self.error(
                            file,
                            every,
                            Msg::new("check.bad_duration").arg("value", every.as_str()),
                        )
                        .hint = Some(Msg::new("check.duration.hint"));
                        None
                    }
                });
        let channels = raw.channels.clone().unwrap_or_else(|| vec![Channel::Board]);
        if channels.contains(&Channel::Sms) && !self.sms_section {
            self.error(
                file,
                &raw.id,
                Msg::new("check.sms_not_configured").arg("id", raw.id.as_str()),
            )
            .hint = Some(Msg::new("check.sms_not_configured.hint"));
        }
        self.check_item_text(file, raw);
        if channels.contains(&Channel::Sms) {
            self.check_sms_caps(file, raw);
        }
        Some(Item {
            id: raw.id.to_string(),
            title: raw.title.trim().to_owned(),
            body: raw
                .body
                .as_ref()
                .map(|b| b.trim_end().to_owned())
                .unwrap_or_default(),
            category: raw.category,
            department: raw.department.clone(),
            valid,
            show,
            color,
            channels,
            at_least_every,
            line: raw.id.line(),
            id_at: (raw.id.col(), raw.id.len()),
            title_at: (raw.title.line(), raw.title.col(), raw.title.len()),
            body_at: raw.body.as_ref().map(|b| (b.line(), b.col(), b.len())),
        })
    }

    /// A display no playlist targets shows only the idle screen: legal, but likely a mistake.
    /// Not said while there are errors: a broken playlist file leaves displays untargeted.
    fn unused_displays(&mut self, model: &Model, site_file: &str) {
        if self.report.has_errors() {
            return;
        }
        for (index, display) in model.displays.iter().enumerate() {
            if !model.playlists.iter().any(|p| p.targets.contains(&index)) {
                self.report.push(Diagnostic::warning(
                    Pos::new(
                        site_file,
                        display.line,
                        display.col,
                        display.id.chars().count() as u32,
                    ),
                    Msg::new("check.display_unused").arg("id", &display.id),
                ));
            }
        }
    }
}

/// What is known about one serial port while the displays on it are checked.
struct Bus {
    baud: u32,
    /// `file:line` of the first display on the bus, for hints.
    first: String,
    addresses: HashMap<u8, String>,
    /// Every protocol on the bus carries an address.
    addressable: bool,
}

/// Checks one hardware profile on its own, for commands that take `--profile FILE` outside a
/// site. `fonts` lists the font files available (`fonts/…`).
pub fn check_profile(file: SourceFile, fonts: Vec<String>) -> (Option<Profile>, Report) {
    let mut cx = Checker {
        report: Report::default(),
        fonts: fonts.into_iter().collect(),
        dropped_names: HashSet::new(),
        sms_section: false,
        sms_caps: Vec::new(),
    };
    let id = profile_id(&file.name);
    let profile = cx
        .parse::<RawProfile>(file)
        .and_then(|(name, raw)| cx.profile(id, &name, raw));
    cx.report.sort();
    (profile, cx.report)
}
