//! Actions: what a rule's steps do. A step is first rendered into a
//! concrete, inspectable [`RenderedStep`] (nothing executed), which
//! `explain`, `test` and the workers all share.

pub mod render;

pub use render::{RenderedStep, render_step};
