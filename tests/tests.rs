//! Integration tests: every module runs the `poisongate` binary on fixtures from `datasets/`
//! or on files it writes into a temporary folder, and checks exit code, stdout and stderr.

mod util;

mod bench;
mod html;
mod scan;
