//! The one wasmtime `Engine`: pooling allocator, epoch interruption and the
//! epoch ticker thread, configured from [`SandboxLimits`].

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::SandboxLimits;

/// How often the epoch advances; the guest CPU budget is counted in ticks.
pub const TICK: Duration = Duration::from_millis(10);

pub fn build_engine(limits: &SandboxLimits) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let instances = limits.max_concurrent_instances.max(1);
    // A wasip2 component built by rustc holds a handful of core instances
    // (program, adapter shims), each with at most a memory and a table.
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 4)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memory_size(limits.memory_bytes)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        .async_stack_size(2 << 20)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    spawn_ticker(&engine);
    Ok(engine)
}

/// Advance the epoch every [`TICK`] until the engine is dropped.
fn spawn_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("switchboard-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
