//! `gongkai sms segments` and `gongkai sms preview`: what a text or an item's bulletin costs.
//!
//! An edge only in that it reads the site and prints; the text, the counting and the template
//! mapping are `crate::sms`. Sending (`sms send`, `sms status`) is not here yet.

use std::io::Write as _;
use std::path::Path;

use super::Exit;
use crate::config;
use crate::config::model::{Sms, SmsGatewayKind};
use crate::i18n::{Lang, tr};
use crate::sms::bulletin::{self, Fields, Style, Template};
use crate::sms::segments::{Segments, segment};

fn counts(lang: Lang, segments: &Segments) -> String {
    let chars = segments.chars.to_string();
    let parts = segments.parts.to_string();
    tr(
        lang,
        "sms.cli.counts",
        &[
            ("encoding", segments.encoding.name()),
            ("chars", &chars),
            ("parts", &parts),
        ],
    )
}

/// `gongkai sms segments TEXT`: encoding, billed characters and parts of a text as given.
pub fn segments(text: &str, lang: Lang) -> Exit {
    let segments = segment(text);
    let _ = writeln!(std::io::stdout(), "{}", counts(lang, &segments));
    Exit::Ok
}

/// `gongkai sms preview ITEM`: the bulletin the site would send for an item, and what it costs;
/// for each template gateway, the variables it would fill.
pub fn preview(site: &Path, item: &str, lang: Lang) -> Exit {
    let loaded = config::load(site);
    let Some(model) = &loaded.model else {
        let _ = write!(std::io::stdout(), "{}", loaded.report.render(lang));
        return Exit::Problems;
    };
    let Some(sms) = &model.site.sms else {
        eprintln!("{}", tr(lang, "sms.cli.not_configured", &[]));
        return Exit::Problems;
    };
    let Some((_, item)) = model.item(item) else {
        eprintln!("{}", tr(lang, "cli.preview.unknown_item", &[("id", item)]));
        return Exit::Problems;
    };
    let fields = Fields {
        title: item.title.clone(),
        body: item.body.clone(),
        url: sms.read_more.clone(),
        department: item.department.clone().unwrap_or_default(),
        category: item.category.name().to_owned(),
    };
    let mut out = std::io::stdout().lock();
    let mut exit = Exit::Ok;
    match free_text(sms, item.category, &fields) {
        Some(b) => {
            let _ = writeln!(out, "{}", b.text);
            let _ = writeln!(out, "{}", counts(lang, &b.segments));
            if b.cut {
                let _ = writeln!(out, "{}", tr(lang, "sms.cli.cut", &[]));
            }
            if b.over_target {
                let target = sms.parts.to_string();
                let _ = writeln!(
                    out,
                    "{}",
                    tr(lang, "sms.cli.over_target", &[("parts", &target)])
                );
                exit = Exit::Problems;
            }
        }
        // Validation checked the template: this cannot happen with a loaded model.
        None => exit = Exit::Failed,
    }
    for gateway in &sms.gateways {
        let Some(template) = &gateway.template else {
            continue;
        };
        if matches!(
            gateway.kind,
            SmsGatewayKind::Outbox | SmsGatewayKind::Kannel(_)
        ) {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{}",
            tr(
                lang,
                "sms.cli.template_gateway",
                &[("id", &gateway.id), ("template", &template.id)]
            )
        );
        match bulletin::template_params(&template.vars, &fields) {
            Ok(params) => {
                for (name, value) in &params {
                    let _ = writeln!(out, "  {name} = {value}");
                }
                let names: Vec<&str> = template.vars.iter().map(|v| v.name.as_str()).collect();
                if let Some(text) = &template.text
                    && let Ok(approved) = Template::parse(text, &names)
                {
                    let (text, segments) =
                        bulletin::template_text(&sms.signature, &approved, &params);
                    let _ = writeln!(out, "  {text}");
                    let _ = writeln!(out, "  {}", counts(lang, &segments));
                }
            }
            Err(e) => {
                let len = e.len.to_string();
                let max = e.max.to_string();
                let _ = writeln!(
                    out,
                    "  {}",
                    tr(
                        lang,
                        "sms.cli.cap",
                        &[("name", &e.name), ("len", &len), ("max", &max)]
                    )
                );
                exit = Exit::Problems;
            }
        }
    }
    exit
}

fn free_text(
    sms: &Sms,
    category: config::model::Category,
    fields: &Fields,
) -> Option<bulletin::Bulletin> {
    let template = Template::for_fields(sms.template(category)).ok()?;
    let style = Style {
        signature: sms.signature.clone(),
        template,
        opt_out: sms.opt_out.clone(),
        target_parts: sms.parts as usize,
    };
    Some(bulletin::render(&style, fields))
}
