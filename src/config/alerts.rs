//! The `alerts:` section of the site file: when the technicians are told that something is
//! wrong (a board silent, a link failing, an SMS gateway refusing), and how (SMS to their
//! numbers, a webhook).
//!
//! Owns the section's raw form (part of the site file's format and its JSON Schema), its model
//! and its checks. Like the rest of `config` it reads nothing but the text it is given: the
//! webhook's token stays a [`SecretSource`], read by the daemon when it sends.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::{SecretSource, Sms, SmsGatewayKind};
use super::raw::Located;
use super::values::{self, DurationError};
use crate::diag::{Diagnostic, Msg, Pos, Report};
use crate::sms::subscribers::NumberError;

/// 告警：显示屏长时间无应答、通信失败率过高、短信网关连续失败时通知技术人员（每次故障一条，恢复时再一条）。
/// Alerts to the technicians: a board silent too long, a link failing too often, an SMS
/// gateway failing repeatedly; once per incident, and again when it is over.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// 显示屏（串口）无应答或（MQTT）连接中断超过此时长即告警，如 5m。不写则不监测。
    /// A board that has not answered (serial) or whose broker link is down (MQTT) this long,
    /// e.g. 5m. Not watched when absent.
    #[serde(default)]
    pub board_silent_for: Option<Located<String>>,
    /// 近 10 分钟内通信失败的比例超过此值即告警，如 20%。不写则不监测。
    /// Share of failed exchanges on a display's link over the last 10 minutes, e.g. 20%.
    /// Not watched when absent.
    #[serde(default)]
    pub link_errors_above: Option<Located<String>>,
    /// 同一短信网关连续失败多少次即告警，如 5。不写则不监测。
    /// Consecutive failed calls to one SMS gateway, e.g. 5. Not watched when absent.
    #[serde(default)]
    pub gateway_failures: Option<Located<u32>>,
    /// 接收告警短信的技术人员手机号，经站点的短信网关发送（须有 sms: 设置）。
    /// The technicians' mobile numbers; alerts go out through the site's SMS gateways (needs
    /// an `sms:` section).
    #[serde(default)]
    pub sms_to: Vec<Located<String>>,
    /// 告警推送地址（HTTP POST JSON）。A webhook that receives each alert as JSON.
    #[serde(default)]
    pub webhook: Option<RawWebhook>,
}

/// 告警推送地址。A webhook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// 地址，http:// 或 https://。The URL, http:// or https://.
    pub url: Located<String>,
    /// 存放令牌的环境变量名（以 Authorization: Bearer 发送）。
    /// Environment variable holding the token, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub token_env: Option<Located<String>>,
    /// 存放令牌的文件（应只有 gongkai 可读，如权限 600）。
    /// File holding the token; keep it readable by gongkai only.
    #[serde(default)]
    pub token_file: Option<Located<String>>,
}

/// The checked `alerts:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    /// A board offline this long is an incident; None: not watched.
    pub board_silent_for: Option<Duration>,
    /// A share of failed exchanges (0 < x ≤ 1) above which a link is an incident.
    pub link_errors_above: Option<f64>,
    /// Consecutive failed calls that make a gateway an incident.
    pub gateway_failures: Option<u32>,
    /// Normalised 11-digit numbers, each once, in the order written.
    pub sms_to: Vec<String>,
    pub webhook: Option<Webhook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub token: Option<SecretSource>,
}

/// Whether a gateway can carry an alert: free text over HTTP. Template gateways need a
/// template approved for bulletins, and the outbox sends nothing.
pub fn carries_alerts(kind: &SmsGatewayKind, has_template: bool) -> bool {
    match kind {
        SmsGatewayKind::Kannel(_) => true,
        SmsGatewayKind::YunMas(_) => !has_template,
        SmsGatewayKind::Outbox | SmsGatewayKind::Aliyun(_) | SmsGatewayKind::Tencent(_) => false,
    }
}

/// `20%`, `2.5%`: a share above 0 and at most 100 %, as a fraction.
pub fn parse_percent(text: &str) -> Option<f64> {
    let number = text.trim().strip_suffix('%')?.trim();
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value > 0.0 && value <= 100.0).then_some(value / 100.0)
}

fn pos<T>(file: &str, at: &Located<T>) -> Pos {
    Pos::new(file, at.line(), at.col(), at.len())
}

/// Checks the `alerts:` section of `file`. `sms_section` says whether the site file has an
/// `sms:` section at all (a broken one is reported by its own checks, not again here); `sms`
/// is that section when it is valid.
pub fn check(
    file: &str,
    raw: &RawAlerts,
    sms_section: bool,
    sms: Option<&Sms>,
    report: &mut Report,
) -> Option<Alerts> {
    let errors_before = report.errors();
    let board_silent_for =
        raw.board_silent_for
            .as_ref()
            .and_then(|text| match values::parse_duration(text) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) | Err(DurationError::Negative) => {
                    report.push(
                        Diagnostic::error(
                            pos(file, text),
                            Msg::new("alerts.check.duration_zero").arg("value", text.trim()),
                        )
                        .with_hint(Msg::new("check.duration.hint")),
                    );
                    None
                }
                Err(_) => {
                    report.push(
                        Diagnostic::error(
                            pos(file, text),
                            Msg::new("check.bad_duration").arg("value", text.trim()),
                        )
                        .with_hint(Msg::new("check.duration.hint")),
                    );
                    None
                }
            });
    let link_errors_above = raw.link_errors_above.as_ref().and_then(|text| {
        let share = parse_percent(text);
        if share.is_none() {
            report.push(
                Diagnostic::error(
                    pos(file, text),
                    Msg::new("alerts.check.percent").arg("value", text.trim()),
                )
                .with_hint(Msg::new("alerts.check.percent.hint")),
            );
        }
        share
    });
    let gateway_failures = match &raw.gateway_failures {
        Some(n) if **n == 0 => {
            report.push(Diagnostic::error(
                pos(file, n),
                Msg::new("sms.check.zero").arg("field", "gateway_failures"),
            ));
            None
        }
        Some(n) => Some(**n),
        None => None,
    };
    // Harmless, so only a warning: there is no gateway to watch.
    if let Some(n) = &raw.gateway_failures
        && !sms_section
    {
        report.push(
            Diagnostic::warning(pos(file, n), Msg::new("alerts.check.no_gateways"))
                .with_hint(Msg::new("alerts.check.no_gateways.hint")),
        );
    }

    let mut sms_to: Vec<String> = Vec::new();
    for number in &raw.sms_to {
        match crate::sms::subscribers::normalize(number) {
            Ok(n) if sms_to.contains(&n) => {
                report.push(Diagnostic::warning(
                    pos(file, number),
                    Msg::new("alerts.check.number_twice").arg("number", number.trim()),
                ));
            }
            Ok(n) => sms_to.push(n),
            Err(e) => {
                report.push(
                    Diagnostic::error(
                        pos(file, number),
                        Msg::new("alerts.check.number")
                            .arg("number", number.trim())
                            .arg_msg(
                                "reason",
                                Msg::new(match e {
                                    NumberError::Length => "alerts.check.number.length",
                                    NumberError::Characters => "alerts.check.number.characters",
                                    NumberError::Segment => "alerts.check.number.segment",
                                }),
                            ),
                    )
                    .with_hint(Msg::new("alerts.check.number.hint")),
                );
            }
        }
    }
    if let Some(first) = raw.sms_to.first() {
        if !sms_section {
            report.push(
                Diagnostic::error(pos(file, first), Msg::new("alerts.check.needs_sms"))
                    .with_hint(Msg::new("alerts.check.needs_sms.hint")),
            );
        } else if let Some(sms) = sms
            && !sms
                .gateways
                .iter()
                .any(|g| carries_alerts(&g.kind, g.template.is_some()))
        {
            report.push(
                Diagnostic::error(pos(file, first), Msg::new("alerts.check.no_text_gateway"))
                    .with_hint(Msg::new("alerts.check.no_text_gateway.hint")),
            );
        }
    }

    let webhook = raw.webhook.as_ref().and_then(|w| webhook(file, w, report));
    if board_silent_for.is_none()
        && link_errors_above.is_none()
        && gateway_failures.is_none()
        && report.errors() == errors_before
    {
        report.push(
            Diagnostic::warning(Pos::file(file), Msg::new("alerts.check.nothing_watched"))
                .with_hint(Msg::new("alerts.check.nothing_watched.hint")),
        );
    }
    (report.errors() == errors_before).then_some(Alerts {
        board_silent_for,
        link_errors_above,
        gateway_failures,
        sms_to,
        webhook,
    })
}

fn webhook(file: &str, raw: &RawWebhook, report: &mut Report) -> Option<Webhook> {
    let url = raw.url.trim();
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let Some(parsed) = parsed else {
        report.push(
            Diagnostic::error(
                pos(file, &raw.url),
                Msg::new("alerts.check.webhook_url").arg("url", url),
            )
            .with_hint(Msg::new("alerts.check.webhook_url.hint")),
        );
        return None;
    };
    let token = match (&raw.token_env, &raw.token_file) {
        (Some(_), Some(path)) => {
            report.push(Diagnostic::error(
                pos(file, path),
                Msg::new("check.two_secret_sources"),
            ));
            return None;
        }
        (Some(env), None) => Some(SecretSource::Env(env.trim().to_owned())),
        (None, Some(path)) => Some(SecretSource::File(path.trim().to_owned())),
        (None, None) => None,
    };
    // A token over plain HTTP to another machine can be read on the way.
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if parsed.scheme() == "http" && token.is_some() && !loopback {
        report.push(
            Diagnostic::warning(
                pos(file, &raw.url),
                Msg::new("alerts.check.webhook_cleartext"),
            )
            .with_hint(Msg::new("alerts.check.webhook_cleartext.hint")),
        );
    }
    Some(Webhook {
        url: url.to_owned(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_fractions_above_zero_up_to_one() {
        assert_eq!(parse_percent("20%"), Some(0.2));
        assert_eq!(parse_percent(" 2.5 % "), Some(0.025));
        assert_eq!(parse_percent("100%"), Some(1.0));
        assert_eq!(parse_percent("0%"), None);
        assert_eq!(parse_percent("120%"), None);
        assert_eq!(parse_percent("20"), None);
        assert_eq!(parse_percent("abc%"), None);
    }
}
