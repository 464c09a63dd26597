package io.sparklora.spark;

import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.IntConsumer;
import java.util.function.IntSupplier;

/**
 * Binds a Spark task to the GPU Spark's resource scheduler assigned it.
 *
 * <p>With {@code spark.task.resource.gpu.amount=1} every task gets one GPU address (an index as the
 * discovery script reported it, e.g. "1"). A task calls {@link #bindCurrentTask()} before it creates any
 * ND4J array: when the ND4J backend is CUDA, the calling thread is bound to that device with
 * {@code Nd4j.getAffinityManager().unsafeSetDevice(index)}, so the task's model replica and its arrays
 * live on the assigned GPU rather than on device 0. ND4J binds threads, and Spark reuses its task
 * threads, so a task must bind each time it starts (binding is cheap).
 *
 * <p>Safe everywhere: outside a task (no {@link TaskContext}), on executors without GPUs, and with the
 * CPU backend (nd4j-native) it binds nothing. No CUDA class is needed at compile time: the CUDA backend
 * is recognized by its class name, and the check runs only when the task actually holds a GPU, so a CPU
 * task never initializes ND4J just for this.
 */
public final class GpuBinding {
    /** Spark's resource name for GPUs (spark.executor.resource.gpu.*, spark.task.resource.gpu.*). */
    public static final String GPU = "gpu";
    /** ND4J's CUDA backend class (module nd4j-cuda-11.6, the build's -Pcuda profile). */
    static final String CUDA_BACKEND = io.sparklora.model.CudaCheck.CUDA_BACKEND;

    private GpuBinding() {}

    /**
     * Binds the current thread to the GPU of the current Spark task.
     *
     * @return the GPU address the task was given (for logging), or empty when there is no task or the task
     *         holds no GPU. The address is returned whether or not the backend is CUDA (only CUDA binds), so
     *         a CPU-built jar on a GPU executor shows up in the caller's logs; {@link #isCudaBackend()} tells.
     * @throws IllegalStateException if the backend is CUDA and the address is not a device index ND4J sees
     */
    public static Optional<String> bindCurrentTask() {
        TaskContext task = TaskContext.get();
        if (task == null) return Optional.empty();
        return bind(task.resourcesJMap(), GpuBinding::isCudaBackend,
                () -> Nd4j.getAffinityManager().getNumberOfDevices(),
                device -> Nd4j.getAffinityManager().unsafeSetDevice(device));
    }

    /** The GPU addresses of the current task; empty outside a task or without GPUs. */
    public static String[] taskGpuAddresses() {
        TaskContext task = TaskContext.get();
        if (task == null) return new String[0];
        ResourceInformation gpu = task.resourcesJMap().get(GPU);
        return gpu == null ? new String[0] : gpu.addresses().clone();
    }

    /** Whether ND4J runs on its CUDA backend (initializes ND4J, so call it only when a GPU is at hand). */
    public static boolean isCudaBackend() {
        if (!cudaBackendOnClassPath()) return false;
        return CUDA_BACKEND.equals(Nd4j.getBackend().getClass().getName());
    }

    /** Whether nd4j-cuda is on the class path at all (cheap: loads no class and no native library). */
    static boolean cudaBackendOnClassPath() {
        ClassLoader cl = Thread.currentThread().getContextClassLoader();
        if (cl == null) cl = GpuBinding.class.getClassLoader();
        return cl.getResource(CUDA_BACKEND.replace('.', '/') + ".class") != null;
    }

    /**
     * The binding logic, with the backend queries passed in (tests use it without a GPU).
     * The first address is used: spark-lora asks for one GPU per task; should a task be given several,
     * it runs on the first and leaves the others idle.
     */
    static Optional<String> bind(Map<String, ResourceInformation> resources, BooleanSupplier cuda,
                                 IntSupplier deviceCount, IntConsumer setDevice) {
        ResourceInformation gpu = resources == null ? null : resources.get(GPU);
        if (gpu == null || gpu.addresses().length == 0) return Optional.empty();
        String address = gpu.addresses()[0].strip();
        if (cuda.getAsBoolean()) {
            int device;
            try {
                device = Integer.parseInt(address);
            } catch (NumberFormatException e) {
                throw new IllegalStateException("GPU address '" + address + "' assigned by Spark is not a CUDA device index;"
                        + " the discovery script must report indices (nvidia-smi --query-gpu=index)", e);
            }
            int count = deviceCount.getAsInt();
            if (device < 0 || device >= count) {
                throw new IllegalStateException("Spark assigned GPU " + address + " but ND4J sees " + count + " CUDA device(s);"
                        + " the discovery script and the executor disagree on numbering (is CUDA_VISIBLE_DEVICES set"
                        + " on the executors? nvidia-smi ignores it, CUDA does not)");
            }
            setDevice.accept(device);
        }
        return Optional.of(address);
    }
}
