package io.sparklora.spark;

import io.sparklora.model.EngineThreads;
import org.apache.spark.TaskContext;

import java.util.Optional;

/**
 * What every Spark task of spark-lora does before it runs engine ops: bind the task's GPU, if Spark gave it one
 * ({@link GpuBinding}), and give the engine as many CPU threads as Spark gave the task ({@code spark.task.cpus},
 * 1 unless set), in every mode: local, standalone, YARN and Kubernetes alike. Tasks running side by side in one
 * executor then each use their own cores instead of all of them ({@link EngineThreads} says why that matters).
 */
public final class TaskEngine {
    private TaskEngine() {}

    /**
     * Prepares the engine for the current task; outside a task (on the driver) it changes nothing.
     *
     * @return the GPU address the task was given, as {@link GpuBinding#bindCurrentTask()} returns it
     */
    public static Optional<String> bind() {
        TaskContext task = TaskContext.get();
        if (task == null) return Optional.empty();
        EngineThreads.set(Math.max(1, task.cpus()));
        return GpuBinding.bindCurrentTask();
    }
}
