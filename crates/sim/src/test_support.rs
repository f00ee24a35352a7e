//! Fixtures for the tests of the crates above this one (feature `test-support`): a tiny synthetic KuaiRec
//! world, generated once per test binary.

use crate::World;
use std::sync::OnceLock;

/// The tiny synthetic KuaiRec world (60 users x 200 items, generator seed 7), DORL paper settings.
pub fn tiny_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        use dsrm_data::synth::{generate, SynthConfig, SynthSize};
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("tiny");
        generate(&SynthConfig::for_size(SynthSize::Tiny), 7, &out, &mut |_, _, _| {}).expect("the tiny synthetic set");
        let data = dsrm_data::kuairec::load(&out, &Default::default()).expect("the tiny synthetic set loads");
        World::kuairec(&data, crate::Preset::DorlPaper.settings(), &Default::default()).expect("the tiny world")
    })
}
