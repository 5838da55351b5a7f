//! A large generated site held in memory, for the validation benchmark and the test that keeps
//! it valid (a benchmark of a site that fails early would measure nothing).

use gongkai::config::{SiteSources, SourceFile};

pub const DISPLAYS: usize = 200;
pub const PLAYLISTS: usize = 50;
pub const ITEMS_PER_PLAYLIST: usize = 40;
/// Displays per RS-485 bus.
const BUS_SIZE: usize = 8;

pub fn generate() -> SiteSources {
    let mut site = String::from(
        "site: 生成测试县政务公开\ntimezone: Asia/Shanghai\nmqtt: { broker: mqtt://127.0.0.1:1883 }\nsms: { signature: 测试县 }\ndisplays:\n",
    );
    for d in 0..DISPLAYS {
        let link = if d % 2 == 0 {
            let bus = d / 2 / BUS_SIZE;
            let address = d / 2 % BUS_SIZE + 1;
            format!("{{ serial: /dev/ttyUSB{bus}, baud: 9600, address: {address} }}")
        } else {
            format!("{{ mqtt: boards/b{d} }}")
        };
        let profile = ["strip", "square"][d % 2];
        site.push_str(&format!(
            "  - id: d{d}\n    name: 第{d}号显示屏\n    profile: {profile}\n    link: {link}\n    groups: [g{}, all]\n",
            d % 10
        ));
    }
    let profiles = vec![
        SourceFile {
            name: "hw-profiles/strip.yaml".into(),
            text: "width: 128\nheight: 16\npixel: mono\nfont: wqy16\nprotocol: gongkai\nserial: { bauds: [9600, 19200] }\nlocal_playback: { pages: true, scroll: true }\n".into(),
        },
        SourceFile {
            name: "hw-profiles/square.yaml".into(),
            text: "width: 192\nheight: 64\npixel: bicolor\nfont: wqy16\nprotocol: gongkai\n".into(),
        },
    ];
    let mut playlists = Vec::with_capacity(PLAYLISTS);
    for p in 0..PLAYLISTS {
        let mut text = format!(
            "id: p{p}\nname: 第{p}号播放列表\ntargets: [g{}, d{}]\nwhen:\n  - cron: \"{} {} * * 1-5\"\n    for: 1h30m\n    dates: {{ from: 2026-12-01, until: 2027-06-30 }}\npriority: {}\nshow: {{ mode: scroll, speed: 32px/s, passes: 2 }}\nitems:\n",
            p % 10,
            (p * 7) % DISPLAYS,
            p % 60,
            8 + p % 10,
            p % 5
        );
        for i in 0..ITEMS_PER_PLAYLIST {
            text.push_str(&format!(
                "  - id: p{p}-i{i}\n    title: 第{i}号公示：城区道路照明节能改造项目采购结果公示\n    category: 政府采购\n    department: 县财政局\n    body: >-\n      大余县城区道路照明节能改造项目经公开招标，确定中标供应商，中标金额人民币1,234,567.89元。\n      公示期自2026年12月1日至12月7日，如有异议请于公示期内书面提出。\n    valid: {{ from: 2026-12-01, until: 2026-12-07T18:00 }}\n    color: yellow\n    channels: [board, sms]\n"
            ));
        }
        playlists.push(SourceFile {
            name: format!("playlists/p{p:02}.yaml"),
            text,
        });
    }
    SiteSources {
        site: Some(SourceFile {
            name: "gongkai.yaml".into(),
            text: site,
        }),
        profiles,
        playlists,
        fonts: Vec::new(),
    }
}
