//! A minimal example backend plugin, from docs/plugin-guide.md
