//! The operator's files exactly as written: serde types with source positions, no meaning yet.
//!
//! These types are the single definition of the file formats. The JSON Schemas in `schemas/`
//! are generated from them (doc comments become the editor's field descriptions), and
//! `docs/configuration.md` documents them field by field. Nothing here checks references or
//! ranges: that is `validate`'s job, which turns these into a [`super::Model`].

use std::borrow::Cow;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

/// A value with the place in the file where it was written, for diagnostics found after parsing.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct Located<T>(pub serde_saphyr::Spanned<T>);

impl<T> Located<T> {
    /// 1-based line of the value's first character.
    pub fn line(&self) -> u32 {
        u32::try_from(self.0.referenced.line()).unwrap_or(u32::MAX)
    }

    /// 1-based column, counted in characters.
    pub fn col(&self) -> u32 {
        u32::try_from(self.0.referenced.column()).unwrap_or(u32::MAX)
    }

    /// Length of the value's text in characters.
    pub fn len(&self) -> u32 {
        u32::try_from(self.0.referenced.span().len()).unwrap_or(u32::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

// ---------------------------------------------------------------------------------------------
// gongkai.yaml

/// 站点文件 gongkai.yaml：站点名称、时区、显示屏与各项服务。The site file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gongkai site (gongkai.yaml)")]
pub struct RawSite {
    /// 站点名称，显示在待机画面上。Site name, shown on idle screens.
    pub site: Located<String>,
    /// 时区（IANA 名称），默认 Asia/Shanghai。IANA timezone, default Asia/Shanghai.
    #[serde(default)]
    pub timezone: Option<Located<String>>,
    /// 模拟运行：为 true 时所有显示屏都在进程内模拟，不接硬件。
    /// When true every display is simulated in the process, whatever its link says.
    #[serde(default)]
    pub simulate: bool,
    /// 显示屏列表。The displays.
    pub displays: Vec<RawDisplay>,
    /// MQTT 服务器（有显示屏通过 MQTT 连接时必填）。The MQTT broker, needed by MQTT links.
    #[serde(default)]
    pub mqtt: Option<RawMqtt>,
    /// 短信公告设置。SMS bulletins.
    #[serde(default)]
    pub sms: Option<RawSms>,
    /// 管理接口（状态、实时画面、控制），默认 127.0.0.1:8640。
    /// The admin listener (status API, live page, control); default 127.0.0.1:8640.
    #[serde(default)]
    pub admin: Option<RawListener>,
    /// 公众接口（触摸屏页面、短信回执），不配置则关闭。
    /// The public listener (kiosk page, gateway callbacks); off unless configured.
    #[serde(default)]
    pub public: Option<RawListener>,
    /// 审核（三审）：条目经哪一步审核后才能上屏和发送短信。
    /// Review (三审): how far an item must get before boards and SMS use it.
    #[serde(default)]
    pub review: Option<RawReview>,
    /// 记录保存期限。How long records are kept.
    #[serde(default)]
    pub retention: Option<RawRetention>,
    /// 故障告警（显示屏无应答、通信失败、短信网关失败），不配置则关闭。
    /// Alerts to the technicians (silent boards, failing links and gateways); off when absent.
    #[serde(default)]
    pub alerts: Option<super::alerts::RawAlerts>,
}

/// 审核设置。Review settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReview {
    /// 上屏和发送短信所需的审核步骤：draft（不审核）、reviewed（初审）、legal（复审）、
    /// approved（审定，默认）。
    /// The stage boards and SMS require: draft (none), reviewed (初审), legal (复审) or
    /// approved (审定, the default).
    pub required: Located<String>,
}

/// 保存期限。Retention.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// 审计记录（上屏记录、短信公告、操作记录）保存年限，如 10y（默认，最少 1y）。
    /// How long the audit (slots shown, bulletins, operator actions) is kept, e.g. 10y
    /// (default; at least 1y).
    #[serde(default)]
    pub audit: Option<Located<String>>,
    /// 已发送短信正文的保存期限，如 180d（默认）；到期后只保留摘要值、号码和状态。
    /// How long the text of sent SMS messages is kept, e.g. 180d (default); after that only its
    /// SHA-256, the numbers and the states remain.
    #[serde(default)]
    pub sms_texts: Option<Located<String>>,
}

/// 一块显示屏。One display.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDisplay {
    /// 编号：字母、数字、-、_、.，用于命令、MQTT 主题和网址。
    /// Id: letters, digits, `-`, `_`, `.`; used in commands, MQTT topics and URLs.
    pub id: Located<String>,
    /// 名称。Human name.
    #[serde(default)]
    pub name: Option<String>,
    /// 安装位置。Where it hangs.
    #[serde(default)]
    pub location: Option<String>,
    /// 硬件配置：hw-profiles/ 下的文件名（不带 .yaml）。Hardware profile: a file name in hw-profiles/ without `.yaml`.
    pub profile: Located<String>,
    /// 连接方式：serial、mqtt 或 simulated 三选一。How frames reach it: one of serial, mqtt, simulated.
    pub link: Located<RawLink>,
    /// 所属分组，播放列表可按分组投放。Groups; playlists may target a group.
    #[serde(default)]
    pub groups: Vec<Located<String>>,
    /// 亮度时刻表：每个 cron 时刻起调到对应亮度，直到下一个时刻。
    /// Brightness schedule: from each cron point on, the board runs at its level until the next.
    #[serde(default)]
    pub brightness: Vec<RawBrightnessPoint>,
    /// 关屏时段（如夜间）：cron 起始时刻加时长，期间屏幕熄灭。
    /// Power-off windows (at night, say): a cron start and a duration; the board is dark inside.
    #[serde(default)]
    pub power_off: Vec<RawWindow>,
}

/// 亮度时刻：cron 时刻与亮度。A brightness point: a cron time and a level.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBrightnessPoint {
    /// 5 段 crontab 时刻，如 "0 19 * * *"。5-field crontab time, e.g. "0 19 * * *".
    pub cron: Located<String>,
    /// 亮度，须在硬件配置的亮度范围内。Level, within the profile's brightness range.
    pub level: Located<u32>,
}

/// 连接方式：`{ serial: 端口, baud: 波特率, address: 地址 }`、`{ mqtt: 主题 }` 或 `{ simulated: true }`。
/// One of `{ serial, baud, address }`, `{ mqtt }` or `{ simulated: true }`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// 串口设备路径，如 /dev/serial/by-id/…。Serial device path.
    #[serde(default)]
    pub serial: Option<Located<String>>,
    /// 波特率，必须是硬件配置支持的。Baud rate; the profile must support it.
    #[serde(default)]
    pub baud: Option<Located<u32>>,
    /// RS-485 地址 1–254（同一总线上的屏各不相同；255 为广播）。
    /// RS-485 address 1–254, unique on its bus (255 is broadcast).
    #[serde(default)]
    pub address: Option<Located<u32>>,
    /// MQTT 主题（相对于站点的主题前缀）。MQTT topic of the board, under the site's prefix.
    #[serde(default)]
    pub mqtt: Option<Located<String>>,
    /// 在进程内模拟此屏。Simulate this board in the process.
    #[serde(default)]
    pub simulated: Option<Located<bool>>,
}

/// MQTT 服务器。The MQTT broker.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// 地址，如 mqtt://127.0.0.1:1883 或 mqtts://broker:8883。Broker URL, mqtt:// or mqtts://.
    pub broker: Located<String>,
    /// 客户端编号，默认 gongkai-<站点>。Client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// 主题前缀，默认 gongkai。Topic prefix, default `gongkai`.
    #[serde(default)]
    pub topic_prefix: Option<Located<String>>,
    /// 用户名。User name.
    #[serde(default)]
    pub username: Option<String>,
    /// 存放密码的环境变量名（密码不写进 YAML）。Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<Located<String>>,
    /// 存放密码的文件（应只有 gongkai 可读，如权限 600）。File holding the password; keep it readable by gongkai only.
    #[serde(default)]
    pub password_file: Option<Located<String>>,
    /// 本单位自建 CA 的证书文件（PEM），仅用于 mqtts://：用它而不是系统根证书验证服务器证书。
    /// The site's own CA certificate (PEM), for mqtts:// only: the broker's certificate is
    /// verified against it instead of the system's root certificates.
    #[serde(default)]
    pub ca_file: Option<Located<String>>,
}

/// 短信公告。SMS bulletins (the gateways are configured here too).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSms {
    /// 短信签名，不含【】。The signature, without 【】.
    pub signature: Located<String>,
    /// 本地发件箱文件（模拟发送时写入），默认 var/sms-outbox.jsonl。Local outbox file.
    #[serde(default)]
    pub outbox: Option<String>,
    /// 查看全文的地方（网址或“县政府网站”），即模板中的 {url}。
    /// Where to read the whole notice (a link or “县政府网站”): the `{url}` of templates.
    #[serde(default)]
    pub read_more: Option<Located<String>>,
    /// 退订提示，附在每条自由文本短信末尾，默认“回复TD退订”；写空字符串则不加。
    /// Opt-out hint ending every free-text bulletin, default 回复TD退订; "" for none.
    #[serde(default)]
    pub opt_out: Option<Located<String>>,
    /// 每条公告最多占几条短信（超出时截短摘要），默认 2。
    /// At most this many messages per bulletin (the summary is cut to fit), default 2.
    #[serde(default)]
    pub parts: Option<Located<u32>>,
    /// 短信模板：键为公开类别（如 政府采购）或 default，值如 “{title}：{summary}详见{url}”。
    /// 可用占位符：{title} {summary} {url} {department} {category}；{{ 和 }} 表示花括号本身。
    /// Free-text templates by category name (or `default`); placeholders {title} {summary}
    /// {url} {department} {category}; `{{` and `}}` are literal braces.
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, Located<String>>,
    /// 免打扰时段（紧急公告除外），默认 21:00 至 08:00。
    /// Quiet hours (urgent items exempt), default 21:00 to 08:00.
    #[serde(default)]
    pub quiet_hours: Option<RawQuietHours>,
    /// 每个号码每天最多收到几条，默认 5。At most this many messages per number per day, default 5.
    #[serde(default)]
    pub daily_cap: Option<Located<u32>>,
    /// 每日汇总：同一天有多条公告时合并为一条短信发给每位订阅者，默认 false。
    /// Daily digest: several items due for one subscriber on one day go out as one message.
    #[serde(default)]
    pub digest: bool,
    /// 短信网关。不配置时使用本地发件箱（不真正发送）。
    /// Gateways. With none, bulletins go to the local outbox (nothing is sent).
    #[serde(default)]
    pub gateways: Vec<RawGateway>,
    /// 网关使用顺序（网关编号），前一个不可用时用下一个；默认按 gateways 的书写顺序。
    /// Routing order (gateway ids): the next is used when one is down; default: as written.
    #[serde(default)]
    pub route: Vec<Located<String>>,
    /// 群发复核：一条公告发给超过这么多人时，需要审定人以外的第二人复核，默认 1000。
    /// A bulletin to more subscribers than this needs a second approval by someone other than
    /// its approver; default 1000.
    #[serde(default)]
    pub second_approval_above: Option<Located<u32>>,
}

/// 免打扰时段。Quiet hours.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawQuietHours {
    /// 开始时刻 HH:MM，如 21:00。Start, HH:MM.
    pub from: Located<String>,
    /// 结束时刻 HH:MM，如 08:00（可早于开始，表示跨过午夜）。End, HH:MM; earlier than the start means past midnight.
    pub until: Located<String>,
}

/// 短信网关种类。Gateway kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// 本地发件箱文件，不真正发送。The local outbox file; nothing is sent.
    Outbox,
    /// 中国移动云MAS（HTTP 接口）。China Mobile 云MAS, HTTP interface.
    Yunmas,
    /// 阿里云短信 SendBatchSms。Alibaba Cloud SMS.
    Aliyun,
    /// 腾讯云短信 SendSms。Tencent Cloud SMS.
    Tencent,
    /// 自建 Kannel 短信网关。Kannel with the site's own SMSC link.
    Kannel,
}

/// 一个短信网关。密钥只能通过 secret_env 或 secret_file 提供，不写进 YAML。
/// One gateway. Its secret comes only from `secret_env` or `secret_file`, never from YAML.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// 编号，用于 route。Id, used in `route`.
    pub id: Located<String>,
    /// 种类：outbox、yunmas、aliyun、tencent、kannel。Kind.
    pub kind: Located<GatewayKind>,
    /// 地址：云MAS、Kannel 必填（如 http://127.0.0.1:13013）；阿里云、腾讯云可改默认地址。
    /// Base URL: required for yunmas and kannel; overrides the endpoint of aliyun and tencent.
    #[serde(default)]
    pub url: Option<Located<String>>,
    /// 云MAS：集团客户名称 ecName。yunmas: registered organisation name.
    #[serde(default)]
    pub ec_name: Option<String>,
    /// 云MAS：接口账号 apId。yunmas: interface account.
    #[serde(default)]
    pub ap_id: Option<String>,
    /// 云MAS：签名编码 sign。yunmas: signature code.
    #[serde(default)]
    pub sign_code: Option<String>,
    /// 云MAS：扩展码，默认空。yunmas: extension code, default empty.
    #[serde(default)]
    pub add_serial: Option<String>,
    /// 云MAS：请求体中是否带 secretKey，默认 true。yunmas: send secretKey in the body, default true.
    #[serde(default)]
    pub secret_in_body: Option<bool>,
    /// 阿里云：AccessKey ID。aliyun: AccessKey id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// 阿里云、腾讯云：地域，默认 cn-hangzhou / ap-guangzhou。Region.
    #[serde(default)]
    pub region: Option<String>,
    /// 腾讯云：SecretId。tencent: SecretId.
    #[serde(default)]
    pub secret_id: Option<String>,
    /// 腾讯云：短信应用 SdkAppId。tencent: SmsSdkAppId.
    #[serde(default)]
    pub sdk_app_id: Option<String>,
    /// Kannel：用户名。kannel: user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Kannel：发送方号码，默认由 Kannel 决定。kannel: sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Kannel：状态报告地址（可含 %d %p %T）。kannel: delivery-report URL.
    #[serde(default)]
    pub dlr_url: Option<String>,
    /// 存放密钥的环境变量名。Environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<Located<String>>,
    /// 存放密钥的文件（权限须为 600）。File holding the secret (mode 600).
    #[serde(default)]
    pub secret_file: Option<Located<String>>,
    /// 事先报备通过的模板（阿里云、腾讯云必填；云MAS 填写则用 tmpsubmit）。
    /// The approved template (required for aliyun and tencent; yunmas then uses tmpsubmit).
    #[serde(default)]
    pub template: Option<RawGatewayTemplate>,
}

/// 报备模板。An approved template.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayTemplate {
    /// 模板编号（阿里云 TemplateCode、腾讯云 TemplateId、云MAS templateId）。Template id.
    pub id: Located<String>,
    /// 模板正文，变量写成 {变量名}，用于计算字数和条数。
    /// The template's text with variables as `{name}`, for counting characters and parts.
    #[serde(default)]
    pub text: Option<Located<String>>,
    /// 模板变量，按模板中的顺序。The variables, in the template's order.
    #[serde(default)]
    pub vars: Vec<RawTemplateVar>,
}

/// 模板变量。A template variable.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTemplateVar {
    /// 变量名（腾讯云为 1、2、3……）。Name in the template (Tencent: 1, 2, 3…).
    pub name: Located<String>,
    /// 取自公告的哪一项：title、summary、url、department、category。Item field it takes.
    pub field: Located<String>,
    /// 最多字数，默认 35。Most characters, default 35.
    #[serde(default)]
    pub max: Option<Located<u32>>,
}

/// 监听地址。A listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// 地址:端口，如 127.0.0.1:8640。host:port.
    pub listen: Located<String>,
    /// 存放访问令牌的环境变量名。Environment variable holding the access token.
    #[serde(default)]
    pub token_env: Option<Located<String>>,
    /// 存放访问令牌的文件（应只有 gongkai 可读，如权限 600）。File holding the access token; keep it readable by gongkai only.
    #[serde(default)]
    pub token_file: Option<Located<String>>,
}

// ---------------------------------------------------------------------------------------------
// hw-profiles/*.yaml

/// 硬件配置：一类显示屏的尺寸、像素格式、字体、协议与通信能力。
/// A hardware profile: geometry, pixel format, font, protocol and link limits of a kind of board.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gongkai hardware profile (hw-profiles/*.yaml)")]
pub struct RawProfile {
    /// 名称。Human name.
    #[serde(default)]
    pub name: Option<String>,
    /// 宽度（像素）。Width in pixels.
    pub width: Located<u32>,
    /// 高度（像素）。Height in pixels.
    pub height: Located<u32>,
    /// 像素格式。Pixel format.
    pub pixel: PixelFormat,
    /// 单色屏的灯色（预览用）。LED colour of a mono board, for previews.
    #[serde(default)]
    pub led_color: Option<LedColor>,
    /// 默认字体：wqy12、wqy14、wqy15、wqy16、unifont，或 fonts/ 下的 .bdf/.ttf/.otf 文件。
    /// Default font: a built-in name or a file in fonts/.
    pub font: Located<String>,
    /// 字号（像素，仅矢量字体）。Font size in pixels, for scalable fonts only.
    #[serde(default)]
    pub font_size: Option<Located<u32>>,
    /// 通信协议。Protocol the controller speaks.
    pub protocol: Located<Protocol>,
    /// 串口能力。Serial link limits.
    #[serde(default)]
    pub serial: Option<RawSerialLimits>,
    /// 控制器能否自行翻页、滚动（慢速串口必需）。Whether the controller plays pages or scrolls by itself.
    #[serde(default)]
    pub local_playback: RawLocalPlayback,
    /// 亮度范围。Brightness range.
    #[serde(default)]
    pub brightness: Option<RawBrightness>,
    /// 像素流屏（TPM2、Adalight）的灯珠走线。Wiring of pixel-stream boards (TPM2, Adalight).
    #[serde(default)]
    pub wiring: Option<RawWiring>,
    /// 画面分区：标题栏、时钟、行距、边距。Screen zones: title bar, clock, line spacing, margin.
    #[serde(default)]
    pub layout: RawLayout,
}

/// 画面分区。How a board's screen is divided.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLayout {
    /// 标题栏：auto（能放 3 行及以上时显示）、always、never。Title bar: auto (when 3 or more lines
    /// fit), always or never.
    #[serde(default)]
    pub title: Option<TitleBar>,
    /// 时钟区（日期和时间）：none、top、bottom。Clock zone with date and time.
    #[serde(default)]
    pub clock: Option<ClockZone>,
    /// 行间距（像素），默认 0。Extra pixels between lines, default 0.
    #[serde(default)]
    pub line_spacing: Option<u32>,
    /// 左右边距（像素），默认 0。Left and right margin in pixels, default 0.
    #[serde(default)]
    pub margin: Option<Located<u32>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TitleBar {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClockZone {
    #[default]
    None,
    Top,
    Bottom,
}

/// 像素格式。Pixel format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// 单色（1 位）。One bit per pixel.
    Mono,
    /// 红绿双色（两者同亮为黄）。Red/green, both lit is yellow.
    Bicolor,
    /// 16 位彩色。16-bit colour.
    Rgb565,
    /// 24 位彩色。24-bit colour.
    Rgb888,
}

/// 单色屏灯色。LED colour of a mono board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LedColor {
    Red,
    Green,
    Amber,
    White,
    Blue,
}

/// 控制器协议。Controller protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// gongkai 自有协议（带应答、RS-485 多机）。gongkai's own protocol.
    Gongkai,
    /// TPM2 像素流。TPM2 pixel stream.
    Tpm2,
    /// Adalight 像素流。Adalight pixel stream.
    Adalight,
    /// 仰邦 BX-5K 文本协议。Onbon BX-5K text protocol.
    Bx5k,
    /// 触摸屏：经 MQTT 发送 PNG 画面。Touchscreen: PNG frames over MQTT.
    Png,
}

/// 串口能力。Serial link limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSerialLimits {
    /// 支持的波特率。Supported baud rates.
    pub bauds: Vec<u32>,
    /// 接收缓冲区大小（字节），大数据分块发送。Receive buffer in bytes; larger payloads are chunked.
    #[serde(default)]
    pub buffer: Option<Located<u32>>,
}

/// 控制器本地播放能力。What the controller can play by itself.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLocalPlayback {
    /// 能自行翻页。Plays uploaded pages by itself.
    #[serde(default)]
    pub pages: bool,
    /// 能自行滚动。Scrolls an uploaded strip by itself.
    #[serde(default)]
    pub scroll: bool,
}

/// 亮度范围。Brightness range.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBrightness {
    pub min: u32,
    pub max: Located<u32>,
}

/// 灯珠走线。Wiring of a pixel-stream board.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWiring {
    /// progressive（每行同向）或 serpentine（蛇形）。Row order.
    pub layout: WiringLayout,
    /// 第一颗灯珠所在角。Corner of the first LED.
    pub origin: Corner,
    /// 颜色顺序，如 grb。Colour order on the wire.
    #[serde(default = "default_color_order")]
    pub order: ColorOrder,
}

fn default_color_order() -> ColorOrder {
    ColorOrder::Rgb
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WiringLayout {
    Progressive,
    Serpentine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Rbg,
    Grb,
    Gbr,
    Brg,
    Bgr,
}

// ---------------------------------------------------------------------------------------------
// playlists/*.yaml

/// 播放列表：投放到哪些屏、何时播出、播什么。A playlist: where, when and what.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gongkai playlist (playlists/*.yaml)")]
// `targets` and `items` default to empty so that validation can say "targets nothing" or
// "no items" in the operator's words; the editor should still ask for them.
#[schemars(extend("required" = ["id", "targets", "items"]))]
pub struct RawPlaylist {
    /// 编号。Id.
    pub id: Located<String>,
    /// 名称。Human name.
    #[serde(default)]
    pub name: Option<String>,
    /// 投放的显示屏编号或分组名。Display ids or group names.
    #[serde(default)]
    pub targets: Vec<Located<String>>,
    /// 播出时段；不写则全天作为这些屏的默认节目。On-air windows; none means always on, as the
    /// targets' default playlist.
    #[serde(default)]
    pub when: Vec<RawWindow>,
    /// 优先级，数字大者优先。Priority; higher wins.
    #[serde(default)]
    pub priority: i32,
    /// 本列表各条目的默认播放方式。Default presentation of this playlist's items.
    #[serde(default)]
    pub show: Option<RawShow>,
    /// 公开条目。The items.
    #[serde(default)]
    pub items: Vec<RawItem>,
}

/// 播出时段：cron 起始时刻加时长。An on-air window: a cron start and a duration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// 5 段 crontab 起始时刻（分 时 日 月 周），如 "0 19 * * *"，或 @daily 等。
    /// 5-field crontab start (minute hour day-of-month month day-of-week), or @daily and the like.
    pub cron: Located<String>,
    /// 时长，如 2h、90m、1h30m。Duration, e.g. 2h, 90m, 1h30m.
    #[serde(rename = "for")]
    pub duration: Located<String>,
    /// 仅在此日期范围内有效。Only between these dates.
    #[serde(default)]
    pub dates: Option<RawValidity>,
}

/// 有效期：from 起（含），until 止（只写日期则含当天）。
/// Validity: from (inclusive) until (a date alone includes that whole day).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawValidity {
    /// 开始，如 2026-12-01 或 2026-12-01T08:00。Start.
    #[serde(default)]
    pub from: Option<Located<String>>,
    /// 结束，如 2026-12-07 或 2026-12-07T18:00。End.
    #[serde(default)]
    pub until: Option<Located<String>>,
}

/// 播放方式。How an item is presented on a board.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawShow {
    /// page 翻页、scroll 横向滚动、roll 纵向滚动。page, scroll (horizontal marquee) or roll (vertical).
    #[serde(default)]
    pub mode: Option<ShowMode>,
    /// 翻页模式每页停留时间，如 8s。Page mode: time each page is held.
    #[serde(default)]
    pub dwell: Option<Located<String>>,
    /// 滚动速度，如 32px/s。Scroll speed, e.g. 32px/s.
    #[serde(default)]
    pub speed: Option<Located<String>>,
    /// 滚动模式文字完整滚过的遍数。Scroll mode: how many times the text passes.
    #[serde(default)]
    pub passes: Option<Located<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShowMode {
    Page,
    Scroll,
    Roll,
}

/// 一条公开信息。One disclosure item.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawItem {
    /// 编号，全站唯一。Id, unique in the site.
    pub id: Located<String>,
    /// 标题。Title.
    pub title: Located<String>,
    /// 正文。Body text.
    #[serde(default)]
    pub body: Option<Located<String>>,
    /// 公开类别（八个重点领域或会议公告、政策文件、其他）。Category.
    pub category: Category,
    /// 牵头单位。Responsible department.
    #[serde(default)]
    pub department: Option<String>,
    /// 有效期（预公开、结果公示期）。Validity period.
    #[serde(default)]
    pub valid: Option<RawValidity>,
    /// 播放方式，覆盖列表的默认值。Presentation, overriding the playlist's.
    #[serde(default)]
    pub show: Option<RawShow>,
    /// 颜色：red、green、yellow、white 等或 #rrggbb。Colour name or #rrggbb.
    #[serde(default)]
    pub color: Option<Located<String>>,
    /// 发布渠道，默认 [board]。Channels, default [board].
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// 重点条目：列表播出时至少每隔这么久播出一次，如 10m。
    /// A priority notice: while its playlist is on air, shown at least this often, e.g. 10m.
    #[serde(default)]
    pub at_least_every: Option<Located<String>>,
}

/// 公开类别：县政务公开实施意见的八个重点领域，另加会议公告、政策文件、其他。
/// Category: the county plan's eight key areas, plus meeting notice, policy and other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
// The English aliases are accepted too, so the editor must not flag them.
#[schemars(extend("enum" = [
    "行政许可", "政府采购", "建设工程招投标", "经营性土地使用权出让", "专项资金管理", "产权交易",
    "人员录用", "城市规划和建设", "会议公告", "政策文件", "其他",
    "licensing", "procurement", "tendering", "land", "special-funds", "property-rights",
    "hiring", "planning", "meeting", "policy", "other"
]))]
pub enum Category {
    #[serde(rename = "行政许可", alias = "licensing")]
    Licensing,
    #[serde(rename = "政府采购", alias = "procurement")]
    Procurement,
    #[serde(rename = "建设工程招投标", alias = "tendering")]
    Tendering,
    #[serde(rename = "经营性土地使用权出让", alias = "land")]
    LandTransfer,
    #[serde(rename = "专项资金管理", alias = "special-funds")]
    SpecialFunds,
    #[serde(rename = "产权交易", alias = "property-rights")]
    PropertyRights,
    #[serde(rename = "人员录用", alias = "hiring")]
    Hiring,
    #[serde(rename = "城市规划和建设", alias = "planning")]
    Planning,
    #[serde(rename = "会议公告", alias = "meeting")]
    Meeting,
    #[serde(rename = "政策文件", alias = "policy")]
    Policy,
    #[serde(rename = "其他", alias = "other")]
    Other,
}

impl Category {
    pub const ALL: [Category; 11] = [
        Category::Licensing,
        Category::Procurement,
        Category::Tendering,
        Category::LandTransfer,
        Category::SpecialFunds,
        Category::PropertyRights,
        Category::Hiring,
        Category::Planning,
        Category::Meeting,
        Category::Policy,
        Category::Other,
    ];

    /// The name operators write and read.
    pub fn name(self) -> &'static str {
        match self {
            Category::Licensing => "行政许可",
            Category::Procurement => "政府采购",
            Category::Tendering => "建设工程招投标",
            Category::LandTransfer => "经营性土地使用权出让",
            Category::SpecialFunds => "专项资金管理",
            Category::PropertyRights => "产权交易",
            Category::Hiring => "人员录用",
            Category::Planning => "城市规划和建设",
            Category::Meeting => "会议公告",
            Category::Policy => "政策文件",
            Category::Other => "其他",
        }
    }

    /// One of the plan's eight key areas (as opposed to meeting notices, policy, other).
    pub fn is_key_area(self) -> bool {
        !matches!(self, Category::Meeting | Category::Policy | Category::Other)
    }
}

/// 发布渠道。Publication channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// LED 显示屏。LED boards.
    Board,
    /// 触摸屏。Touchscreen kiosks.
    Touch,
    /// 短信。SMS bulletins.
    Sms,
}
