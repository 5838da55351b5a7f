//! The repository root is the example county: it must validate, reference its schemas, and
//! the shipped schemas must be exactly what the code generates.

use std::path::{Path, PathBuf};

use gongkai::config::model::{Link, Protocol};
use gongkai::config::raw::Category;
use gongkai::i18n::Lang;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_county_validates_without_errors() {
    let loaded = gongkai::config::load(&root());
    let model = loaded
        .model
        .unwrap_or_else(|| panic!("{}", loaded.report.render(Lang::En)));
    assert_eq!(loaded.report.errors(), 0);
    assert!(model.site.name.contains("大余"));
    assert!(model.display("square").is_some(), "the 钨都广场 board");
    // At least four window boards share one RS-485 bus with addresses 1..n.
    let mut buses: std::collections::BTreeMap<&str, Vec<u8>> = Default::default();
    let raw_site = std::fs::read_to_string(root().join("gongkai.yaml")).expect("site");
    assert!(
        raw_site.contains("simulate: true"),
        "the example runs without hardware"
    );
    for display in &model.displays {
        assert_eq!(
            *model.effective_link(display),
            Link::Simulated,
            "simulate: true overrides every link"
        );
    }
    for line in raw_site
        .lines()
        .filter(|l| l.contains("serial:") && l.contains("address:"))
    {
        let port = line
            .split("serial:")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("")
            .trim();
        let address: u8 = line
            .split("address:")
            .nth(1)
            .and_then(|s| s.trim().trim_end_matches('}').trim().parse().ok())
            .unwrap_or(0);
        buses.entry(port).or_default().push(address);
    }
    let shared = buses
        .values()
        .max_by_key(|a| a.len())
        .expect("serial displays");
    assert!(shared.len() >= 4, "{buses:?}");
    assert_eq!(
        shared.to_vec(),
        (1..=shared.len() as u8).collect::<Vec<_>>()
    );
    assert!(
        model.profiles.iter().any(|p| p.protocol == Protocol::Png),
        "a touchscreen kiosk"
    );
    // Every key area of the plan has items.
    for category in Category::ALL.iter().filter(|c| c.is_key_area()) {
        assert!(
            model.items().any(|(_, i)| i.category == *category),
            "no item in {}",
            category.name()
        );
    }
    // Standing items make the example show content whatever the date.
    assert!(
        model
            .items()
            .any(|(_, i)| i.valid.from.is_none() && i.valid.until.is_none())
    );
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_file_names_its_schema_on_the_first_line() {
    let mut checked = 0;
    let expectations = [
        (
            vec![root().join("gongkai.yaml")],
            "# yaml-language-server: $schema=schemas/site.schema.json",
        ),
        (
            yaml_files(&root().join("hw-profiles")),
            "# yaml-language-server: $schema=../schemas/profile.schema.json",
        ),
        (
            yaml_files(&root().join("playlists")),
            "# yaml-language-server: $schema=../schemas/playlist.schema.json",
        ),
    ];
    for (files, first_line) in expectations {
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            assert_eq!(text.lines().next(), Some(first_line), "{}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} files checked");
}

#[test]
fn shipped_schemas_match_the_generated_ones() {
    for (name, generated) in gongkai::config::schema::all() {
        let path = root().join("schemas").join(name);
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "schemas/{name} is out of date: run `cargo run -- schema --write schemas` and commit the result"
        );
    }
}

#[test]
fn schema_describes_the_fields_in_both_languages() {
    let (_, site) = gongkai::config::schema::all()
        .into_iter()
        .next()
        .expect("site schema");
    let json: serde_json::Value = serde_json::from_str(&site).expect("valid JSON");
    let description = json["properties"]["timezone"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(
        description.contains("时区") && description.contains("IANA"),
        "{description}"
    );
    assert_eq!(
        json["additionalProperties"],
        serde_json::Value::Bool(false),
        "unknown fields are flagged by the editor"
    );
}

#[test]
fn every_category_alias_the_loader_accepts_is_in_the_schema() {
    let (_, playlist) = gongkai::config::schema::all()
        .into_iter()
        .nth(2)
        .expect("playlist schema");
    let json: serde_json::Value = serde_json::from_str(&playlist).expect("valid JSON");
    let allowed: Vec<&str> = json["$defs"]["Category"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for name in &allowed {
        let yaml = format!("\"{name}\"");
        let parsed: Result<Category, _> = serde_saphyr::from_str(&yaml);
        assert!(
            parsed.is_ok(),
            "the schema allows {name}, the loader refuses it"
        );
    }
    for category in Category::ALL {
        assert!(
            allowed.contains(&category.name()),
            "{} missing from the schema",
            category.name()
        );
    }
    assert_eq!(allowed.len(), 22);
}
