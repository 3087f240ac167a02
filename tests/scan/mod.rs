mod bad_input;
mod clean;
mod findings;
mod images;
mod outputs;
