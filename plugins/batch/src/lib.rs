//! WIP
#![allow(dead_code)]
mod flavour;
