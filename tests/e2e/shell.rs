//! What a packager installs beside the binary: shell completions and a man page, made
//! from the command-line definitions themselves.

use crate::util::Ganga;

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let g = Ganga::new();
    // They need no home, store or plugins.
    let nowhere = g.path("no-home-here");
    for (shell, marker) in [
        ("bash", "complete -F _ganga"),
        ("zsh", "#compdef ganga"),
        ("fish", "complete -c ganga"),
    ] {
        let out = g
            .command(&["completions", shell])
            .env("GANGA_HOME", &nowhere)
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}:\n{script}");
        // Subcommands and their flags are in it.
        for word in ["submit", "subjobs", "--status", "migrate"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    assert!(!nowhere.exists());
    let err = g.fail(&["completions", "tcsh"]);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn the_man_page_is_roff_describing_every_command() {
    let g = Ganga::new();
    let page = g.run(&["man"]);
    assert!(page.contains("\n.TH ganga 1 "), "{page}");
    for word in [
        "submit",
        "subjobs",
        "resubmit",
        "force\\-status",
        "GANGA_HOME",
    ] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
}
