package io.sparklora.model;

import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The CUDA build's start-up check without a GPU: each step made to fail in turn (the real steps run against the CUDA
 * jar in jobs/scripts/check-cuda-jar.sh), and the CPU build left alone.
 */
class CudaCheckTest {

    /** A probe whose steps pass or throw as told, recording which ran. */
    static final class Scripted implements CudaCheck.Probe {
        final List<String> ran = new ArrayList<>();
        Throwable driver, devices, cublas, backend;
        int deviceCount = 1;
        int[][] capabilities = {{8, 0}};
        String backendName = CudaCheck.CUDA_BACKEND;

        @Override public void loadDriver() throws Throwable { ran.add("driver"); if (driver != null) throw driver; }
        @Override public int deviceCount() throws Throwable { ran.add("devices"); if (devices != null) throw devices; return deviceCount; }
        @Override public int[] computeCapability(int device) { ran.add("cc" + device); return capabilities[device]; }
        @Override public void loadCublas() throws Throwable { ran.add("cublas"); if (cublas != null) throw cublas; }
        @Override public String backend() throws Throwable { ran.add("backend"); if (backend != null) throw backend; return backendName; }
    }

    @Test
    void aMachineWithAWorkingGpuPassesEveryStep() {
        Scripted p = new Scripted();
        assertEquals(Optional.empty(), CudaCheck.diagnose(p));
        assertEquals(List.of("driver", "devices", "cc0", "cublas", "backend"), p.ran);
    }

    @Test
    void aGpuNewerThanTheKernelsIsRefusedBeforeNd4jStarts() {
        Scripted p = new Scripted();
        p.deviceCount = 2;
        p.capabilities = new int[][]{{8, 6}, {9, 0}};   // an A40 next to an H100/H200
        assertEquals(Optional.of("GPU 1 has compute capability 9.0 (sm_90) but ND4J 1.0.0-M2.1's CUDA kernels are built for"
                + " sm_37 to sm_86 only, without PTX to compile for newer GPUs"), CudaCheck.diagnose(p));
        assertEquals(List.of("driver", "devices", "cc0", "cc1"), p.ran);

        // the cubins' rule: same major, equal or higher minor
        for (int[] ok : new int[][]{{3, 7}, {5, 0}, {5, 3}, {6, 1}, {7, 0}, {7, 5}, {8, 0}, {8, 6}, {8, 9}}) {
            assertTrue(CudaCheck.kernelsRunOn(ok[0], ok[1]), ok[0] + "." + ok[1]);
        }
        for (int[] no : new int[][]{{3, 5}, {3, 0}, {9, 0}, {10, 0}, {12, 0}}) {
            assertFalse(CudaCheck.kernelsRunOn(no[0], no[1]), no[0] + "." + no[1]);
        }

        System.setProperty(CudaCheck.ANY_ARCH_PROPERTY, "true");
        try {
            Scripted q = new Scripted();
            q.capabilities = new int[][]{{9, 0}};
            assertEquals(Optional.empty(), CudaCheck.diagnose(q));
            assertEquals(List.of("driver", "devices", "cublas", "backend"), q.ran);
        } finally {
            System.clearProperty(CudaCheck.ANY_ARCH_PROPERTY);
        }
    }

    @Test
    void noDriverIsReportedWithTheLoadersWordsAndNothingElseIsTried() {
        Scripted p = new Scripted();
        p.driver = new UnsatisfiedLinkError("libcuda.so.1: cannot open shared object file: No such file or directory");
        Optional<String> reason = CudaCheck.diagnose(p);
        assertEquals(Optional.of("cannot load the NVIDIA driver library (libcuda.so.1: cannot open shared object file: No such file or directory)"), reason);
        assertEquals(List.of("driver"), p.ran, "no CUDA class may be loaded once the driver is missing");
    }

    @Test
    void aRuntimeErrorCodeIsReportedThroughItsRootCause() {
        Scripted p = new Scripted();
        // what reflection around cudaGetDeviceCount throws: the cause wrapped in InvocationTargetException
        p.devices = new InvocationTargetException(new IllegalStateException(
                "cudaGetDeviceCount returned error 35: CUDA driver version is insufficient for CUDA runtime version"));
        assertEquals(Optional.of("CUDA 11 runtime: cudaGetDeviceCount returned error 35: CUDA driver version is insufficient for CUDA runtime version"),
                CudaCheck.diagnose(p));
        assertEquals(List.of("driver", "devices"), p.ran);
    }

    @Test
    void zeroDevicesIsAProblem() {
        Scripted p = new Scripted();
        p.deviceCount = 0;
        String reason = CudaCheck.diagnose(p).orElseThrow();
        assertTrue(reason.startsWith("the CUDA runtime sees no device (CUDA_VISIBLE_DEVICES="), reason);
        assertEquals(List.of("driver", "devices"), p.ran);
    }

    @Test
    void missingCublasAndAFailingBackendAreEachNamed() {
        Scripted p = new Scripted();
        p.cublas = new UnsatisfiedLinkError("libcublas.so.11: cannot open shared object file");
        assertEquals(Optional.of("cannot load cuBLAS of CUDA 11 (libcublas.so.11: cannot open shared object file)"), CudaCheck.diagnose(p));

        Scripted q = new Scripted();
        q.backend = new ExceptionInInitializerError(new RuntimeException("No CUDA devices were found in system"));
        assertEquals(Optional.of("ND4J's CUDA backend failed to start (No CUDA devices were found in system)"), CudaCheck.diagnose(q));

        Scripted r = new Scripted();
        r.backendName = CudaCheck.CPU_BACKEND;
        assertEquals(Optional.of("ND4J started its backend " + CudaCheck.CPU_BACKEND + " instead of " + CudaCheck.CUDA_BACKEND),
                CudaCheck.diagnose(r));
    }

    @Test
    void theMessageIsOneLineAndSaysWhatToDo() {
        String m = CudaCheck.message("ND4J failed:\n\tat org.nd4j.Foo.bar(Foo.java:1)\r\n  more");
        assertFalse(m.contains("\n") || m.contains("\r"), m);
        assertTrue(m.startsWith("spark-lora: this is the CUDA build (nd4j-cuda-11.6) but no usable CUDA driver/GPU was found: "
                + "ND4J failed: at org.nd4j.Foo.bar(Foo.java:1) more; use the CPU jar"), m);
        assertTrue(m.contains("or run on a GPU node"), m);
        // a cause without a message still names something
        assertEquals("java.lang.UnsatisfiedLinkError", CudaCheck.rootMessage(new RuntimeException(new UnsatisfiedLinkError())));
    }

    @Test
    void theCpuBuildIsNotTheCudaBuildAndIsNeverStopped() {
        // this module's test class path has nd4j-native (also under -Pcuda, where nd4j-cuda joins it)
        assertFalse(CudaCheck.cudaOnly());
        assertEquals(Optional.empty(), CudaCheck.problem());
        assertDoesNotThrow(CudaCheck::require);
    }
}
