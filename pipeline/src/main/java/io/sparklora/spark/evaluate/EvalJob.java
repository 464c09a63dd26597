package io.sparklora.spark.evaluate;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.spark.ShardSource;

import java.io.Serializable;

/**
 * One adapter of a mixed evaluation ({@link MixedEvaluateStage}): its name (the adapter name its rows carry), its
 * config as trained, and its own held-out data: validation blocks and, for a labelled dataset, labelled examples
 * (either may be null). Its trained tensors travel separately, in the stage's one broadcast.
 */
public record EvalJob(String name, AdapterConfig config, ShardSource blocks, ExampleSource examples) implements Serializable {}
