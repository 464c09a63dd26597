import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * Checks that the CUDA build of the jobs jar runs the same spark-lora code as the CPU build and differs only in ND4J's
 * backend. Run with Java 17's single-file launcher (jobs/scripts/check-cuda-jar.sh does):
 * <pre>java jobs/scripts/CudaJarCheck.java jobs/target/spark-lora-jobs.jar jobs/target/cuda/spark-lora-jobs-cuda.jar</pre>
 * <ul>
 *   <li>every entry under {@code io/sparklora/} (spark-lora's classes and resources, and the Guava it relocates there)
 *       is in both jars, with the same bytes (SHA-256 of the uncompressed content);</li>
 *   <li>the CUDA jar holds ND4J's CUDA backend class and its linux-x86_64 natives, and neither the CPU backend
 *       nor its natives nor OpenBLAS;</li>
 *   <li>the CPU jar is the other way round (so the comparison is between the two builds, not two copies of one).</li>
 * </ul>
 * Prints one summary line and exits 0, or prints each difference and exits 1.
 */
public class CudaJarCheck {
    static final String OURS = "io/sparklora/";
    static final String CUDA_BACKEND = "org/nd4j/linalg/jcublas/JCublasBackend.class";
    static final String CUDA_NATIVES = "org/nd4j/linalg/jcublas/bindings/linux-x86_64/libjnind4jcuda.so";
    static final String CPU_BACKEND = "org/nd4j/linalg/cpu/nativecpu/CpuBackend.class";
    static final String CPU_NATIVES = "org/nd4j/linalg/cpu/nativecpu/bindings/linux-x86_64/libjnind4jcpu.so";
    static final String OPENBLAS = "org/bytedeco/openblas/";

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: java CudaJarCheck.java CPU_JAR CUDA_JAR");
            System.exit(2);
        }
        List<String> problems = new ArrayList<>();
        int compared;
        try (ZipFile cpu = new ZipFile(args[0]); ZipFile cuda = new ZipFile(args[1])) {
            Map<String, String> a = digests(cpu, OURS), b = digests(cuda, OURS);
            if (a.isEmpty()) problems.add(args[0] + " has no " + OURS + " entries");
            for (var e : a.entrySet()) {
                String other = b.get(e.getKey());
                if (other == null) problems.add("only in the CPU jar: " + e.getKey());
                else if (!other.equals(e.getValue())) problems.add("different bytes: " + e.getKey());
            }
            for (String name : b.keySet()) if (!a.containsKey(name)) problems.add("only in the CUDA jar: " + name);
            compared = a.size();

            expect(cuda, args[1], CUDA_BACKEND, true, problems);
            expect(cuda, args[1], CUDA_NATIVES, true, problems);
            expect(cuda, args[1], CPU_BACKEND, false, problems);
            expect(cuda, args[1], CPU_NATIVES, false, problems);
            expectNoPrefix(cuda, args[1], OPENBLAS, problems);
            expect(cpu, args[0], CPU_BACKEND, true, problems);
            expect(cpu, args[0], CPU_NATIVES, true, problems);
            expect(cpu, args[0], CUDA_BACKEND, false, problems);
        }
        if (!problems.isEmpty()) {
            problems.forEach(p -> System.err.println("CudaJarCheck: " + p));
            System.err.println("CudaJarCheck: FAILED, " + problems.size() + " problem(s)");
            System.exit(1);
        }
        System.out.println("CudaJarCheck: " + compared + " entries under " + OURS + " identical in both jars; the CUDA jar has"
                + " ND4J's CUDA backend and natives and no CPU backend, natives or OpenBLAS");
    }

    static Map<String, String> digests(ZipFile jar, String prefix) throws IOException {
        Map<String, String> out = new TreeMap<>();
        for (ZipEntry e : java.util.Collections.list(jar.entries())) {
            if (e.isDirectory() || !e.getName().startsWith(prefix)) continue;
            try (InputStream in = jar.getInputStream(e)) {
                MessageDigest sha = MessageDigest.getInstance("SHA-256");
                sha.update(in.readAllBytes());
                out.put(e.getName(), HexFormat.of().formatHex(sha.digest()));
            } catch (java.security.NoSuchAlgorithmException x) {
                throw new IllegalStateException(x);
            }
        }
        return out;
    }

    static void expect(ZipFile jar, String name, String entry, boolean present, List<String> problems) {
        if ((jar.getEntry(entry) != null) != present) problems.add(name + (present ? " lacks " : " must not contain ") + entry);
    }

    static void expectNoPrefix(ZipFile jar, String name, String prefix, List<String> problems) {
        jar.stream().filter(e -> e.getName().startsWith(prefix)).findFirst()
                .ifPresent(e -> problems.add(name + " must not contain " + prefix + " (found " + e.getName() + ")"));
    }
}
