package io.sparklora.model;

import org.nd4j.linalg.factory.Nd4j;

import java.util.Optional;

/**
 * Fails a CUDA build of spark-lora early and in one line on a machine that cannot run it.
 *
 * <p>The {@code -Pcuda} jar carries ND4J's CUDA backend (nd4j-cuda-11.6) and no CPU backend. Started where there is
 * no NVIDIA driver or GPU, ND4J's own start-up prints a native stack trace ({@code UnsatisfiedLinkError} on
 * {@code libjnicudart.so}, then {@code NoAvailableBackendException}) and leaves the class {@code Nd4j} unusable. Before
 * anything touches ND4J, {@link #problem()} tries the same steps one at a time, cheapest first, and names the first that
 * fails:
 * <ol>
 *   <li>the NVIDIA driver library, {@code libcuda.so.1} (dlopen through JavaCPP: no CUDA class loaded yet);</li>
 *   <li>the CUDA 11 runtime and at least one device ({@code cudaGetDeviceCount} of JavaCPP's cudart binding, which
 *       links libcudart.so.11.0);</li>
 *   <li>each device's compute capability against the GPU code ND4J 1.0.0-M2.1's libnd4jcuda.so carries: machine code
 *       (SASS) for sm_37, sm_50, sm_52, sm_60, sm_61, sm_70, sm_75, sm_80 and sm_86 and no PTX, so it runs on compute
 *       capability 3.7 and 5.0 to 8.9 and on nothing newer (Hopper sm_90, Blackwell), which would otherwise fail at
 *       the first kernel launch (docs/CLUSTER.md, "CUDA executors"; {@link #ANY_ARCH_PROPERTY} skips this step);</li>
 *   <li>cuBLAS (JavaCPP's cublas binding, which ND4J's backend loads next);</li>
 *   <li>ND4J's backend itself ({@code Nd4j.getBackend()}), which must then be the CUDA one.</li>
 * </ol>
 * The CLI prints {@link #message} and exits with {@link #EXIT_CODE}; an executor's task throws
 * {@link CudaUnavailableException} ({@link EngineThreads#set}, the first engine call of every task). On a CPU build
 * (nd4j-native on the class path, with or without nd4j-cuda) it does nothing and loads nothing: ND4J picks its backend
 * as before.
 */
public final class CudaCheck {
    /** ND4J's CUDA backend class (module nd4j-cuda-11.6). */
    public static final String CUDA_BACKEND = "org.nd4j.linalg.jcublas.JCublasBackend";
    /** ND4J's CPU backend class (module nd4j-native). */
    public static final String CPU_BACKEND = "org.nd4j.linalg.cpu.nativecpu.CpuBackend";
    /** The CLI's exit code when the CUDA build finds no usable GPU (1 is bad input, 2 a usage error). */
    public static final int EXIT_CODE = 3;
    /**
     * System property that skips the compute-capability step (for a jar whose libnd4jcuda was rebuilt for other GPUs).
     */
    public static final String ANY_ARCH_PROPERTY = "sparklora.cuda.anyArch";

    private static Boolean cudaOnly;
    private static Optional<String> problem;

    private CudaCheck() {}

    /** Thrown by a task of the CUDA build on an executor without a usable CUDA driver or GPU. */
    public static final class CudaUnavailableException extends IllegalStateException {
        public CudaUnavailableException(String message) { super(message); }
    }

    /** The steps of the check, separated so a test can make each one fail without a GPU. */
    interface Probe {
        /** Loads the NVIDIA driver library; throws what the dynamic loader said. */
        void loadDriver() throws Throwable;
        /** The number of CUDA devices; throws when the runtime cannot be loaded or returns an error. */
        int deviceCount() throws Throwable;
        /** Device {@code device}'s compute capability as {major, minor}. */
        int[] computeCapability(int device) throws Throwable;
        /** Loads cuBLAS; throws when it cannot. */
        void loadCublas() throws Throwable;
        /** Initializes ND4J and returns its backend's class name. */
        String backend() throws Throwable;
    }

    /**
     * Whether this is the CUDA build: ND4J's CUDA backend on the class path and its CPU backend not. Looks for the two
     * class files only; loads no class and no native library.
     */
    public static synchronized boolean cudaOnly() {
        if (cudaOnly == null) cudaOnly = onClassPath(CUDA_BACKEND) && !onClassPath(CPU_BACKEND);
        return cudaOnly;
    }

    /**
     * Why the CUDA build cannot run in this JVM, or empty when it can or when this is not the CUDA build. Runs the
     * check once per JVM; afterwards returns the same answer.
     */
    public static synchronized Optional<String> problem() {
        if (problem == null) problem = cudaOnly() ? diagnose(new JavaCppProbe()) : Optional.empty();
        return problem;
    }

    /** Throws {@link CudaUnavailableException} with {@link #message} when {@link #problem()} finds one. */
    public static void require() {
        Optional<String> p = problem();
        if (p.isPresent()) throw new CudaUnavailableException(message(p.get()));
    }

    /** The one line a user sees, with the reason (made single-line). */
    public static String message(String reason) {
        return "spark-lora: this is the CUDA build (nd4j-cuda-11.6) but no usable CUDA driver/GPU was found: " + oneLine(reason)
                + "; use the CPU jar (mvn -B package: jobs/target/spark-lora-jobs.jar) or run on a GPU node"
                + " (compute capability 3.7 to 8.9, NVIDIA driver >= 510.39, CUDA 11.6 runtime; docs/CLUSTER.md \"CUDA executors\")";
    }

    /** The first step of {@code probe} that fails, as a reason; empty when all pass and the backend is CUDA. */
    static Optional<String> diagnose(Probe probe) {
        try {
            probe.loadDriver();
        } catch (Throwable t) {
            return Optional.of("cannot load the NVIDIA driver library (" + rootMessage(t) + ")");
        }
        try {
            int devices = probe.deviceCount();
            if (devices <= 0) return Optional.of("the CUDA runtime sees no device (CUDA_VISIBLE_DEVICES="
                    + System.getenv().getOrDefault("CUDA_VISIBLE_DEVICES", "unset") + ")");
            if (!Boolean.getBoolean(ANY_ARCH_PROPERTY)) {
                for (int d = 0; d < devices; d++) {
                    int[] cc = probe.computeCapability(d);
                    if (!kernelsRunOn(cc[0], cc[1])) {
                        return Optional.of("GPU " + d + " has compute capability " + cc[0] + "." + cc[1] + " (sm_" + cc[0] + cc[1]
                                + ") but ND4J 1.0.0-M2.1's CUDA kernels are built for sm_37 to sm_86 only, without PTX to"
                                + " compile for newer GPUs");
                    }
                }
            }
        } catch (Throwable t) {
            return Optional.of("CUDA 11 runtime: " + rootMessage(t));
        }
        try {
            probe.loadCublas();
        } catch (Throwable t) {
            return Optional.of("cannot load cuBLAS of CUDA 11 (" + rootMessage(t) + ")");
        }
        try {
            String backend = probe.backend();
            if (!CUDA_BACKEND.equals(backend)) return Optional.of("ND4J started its backend " + backend + " instead of " + CUDA_BACKEND);
        } catch (Throwable t) {
            return Optional.of("ND4J's CUDA backend failed to start (" + rootMessage(t) + ")");
        }
        return Optional.empty();
    }

    /**
     * Whether ND4J 1.0.0-M2.1's kernels can run on a GPU of this compute capability: a cubin built for sm_XY runs on
     * major X with minor Y or higher, and the library has cubins for 3.7, 5.0, 5.2, 6.0, 6.1, 7.0, 7.5, 8.0, 8.6.
     */
    static boolean kernelsRunOn(int major, int minor) {
        return (major == 3 && minor >= 7) || (major >= 5 && major <= 8);
    }

    static String rootMessage(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) root = root.getCause();
        String m = root.getMessage();
        return oneLine(m == null || m.isBlank() ? root.getClass().getName() : m);
    }

    private static String oneLine(String s) {
        return s.replaceAll("\\s*[\\r\\n]+\\s*", " ").strip();
    }

    private static boolean onClassPath(String className) {
        String resource = className.replace('.', '/') + ".class";
        ClassLoader cl = Thread.currentThread().getContextClassLoader();
        if (cl != null && cl.getResource(resource) != null) return true;
        ClassLoader own = CudaCheck.class.getClassLoader();
        return own != null && own.getResource(resource) != null;
    }

    /**
     * The real steps, through JavaCPP (in both builds) and, by reflection, JavaCPP's CUDA bindings (in the CUDA build
     * only, so nothing here needs them at compile time).
     */
    static final class JavaCppProbe implements Probe {
        static final String CUDART = "org.bytedeco.cuda.global.cudart";
        static final String CUBLAS = "org.bytedeco.cuda.global.cublas";

        @Override public void loadDriver() {
            // dlopen with the system's search path, as libcudart does later; throws UnsatisfiedLinkError with dlerror()
            org.bytedeco.javacpp.Loader.loadGlobal("libcuda.so.1");
        }

        @Override public int deviceCount() throws Exception {
            Class<?> cudart = Class.forName(CUDART, true, CudaCheck.class.getClassLoader());
            int[] count = {0};
            int rc = (Integer) cudart.getMethod("cudaGetDeviceCount", int[].class).invoke(null, (Object) count);
            if (rc != 0) {
                Object text = cudart.getMethod("cudaGetErrorString", int.class).invoke(null, rc);
                String s = (String) text.getClass().getMethod("getString").invoke(text);
                throw new IllegalStateException("cudaGetDeviceCount returned error " + rc + ": " + s);
            }
            return count[0];
        }

        @Override public int[] computeCapability(int device) throws Exception {
            Class<?> cudart = Class.forName(CUDART, true, CudaCheck.class.getClassLoader());
            var get = cudart.getMethod("cudaDeviceGetAttribute", int[].class, int.class, int.class);
            int[] cc = new int[2];
            String[] attrs = {"cudaDevAttrComputeCapabilityMajor", "cudaDevAttrComputeCapabilityMinor"};
            for (int i = 0; i < 2; i++) {
                int[] value = {0};
                int rc = (Integer) get.invoke(null, value, cudart.getField(attrs[i]).getInt(null), device);
                if (rc != 0) throw new IllegalStateException("cudaDeviceGetAttribute(" + attrs[i] + ", " + device + ") returned error " + rc);
                cc[i] = value[0];
            }
            return cc;
        }

        @Override public void loadCublas() throws Exception {
            Class.forName(CUBLAS, true, CudaCheck.class.getClassLoader());
        }

        @Override public String backend() {
            return Nd4j.getBackend().getClass().getName();
        }
    }
}
