//! Tests of the controller shell: its pure helpers here, the controllers against a real control
//! plane in [`e2e`].

mod checks;
mod e2e;
