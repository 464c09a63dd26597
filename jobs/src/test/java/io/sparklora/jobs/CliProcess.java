package io.sparklora.jobs;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs {@code bin/spark-lora} as a user does, in its own JVM, on the test class path (SPARK_LORA_CLASSPATH,
 * so the script skips its build) with the script's own flags and {@code conf/log4j2.properties}.
 * Output goes to files so a long run never blocks on a full pipe.
 */
final class CliProcess {
    static final Path ROOT = findRoot();

    private CliProcess() {}

    private static Path findRoot() {
        for (Path d = Path.of(System.getProperty("user.dir")).toAbsolutePath(); d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("bin/spark-lora")) && Files.isRegularFile(d.resolve("conf/log4j2.properties"))) return d;
        }
        throw new AssertionError("no checkout (bin/spark-lora, conf/log4j2.properties) above " + System.getProperty("user.dir"));
    }

    /** The class path of this test JVM (surefire hands it over as a property; its java.class.path is a booter jar). */
    static String classPath() {
        String cp = System.getProperty("surefire.test.class.path");
        return cp != null && !cp.isBlank() ? cp : System.getProperty("java.class.path");
    }

    /** A finished run: exit code, stdout, stderr. */
    record Result(int code, String out, String err) {}

    /** A started run whose output goes to {@code <dir>/<name>.out|.err}. */
    record Started(Process process, Path out, Path err) {
        /** Waits for the end (killing the process and its children after {@code seconds}) and reads its output. */
        Result await(long seconds) throws Exception {
            if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly().waitFor();
                throw new AssertionError("spark-lora did not finish within " + seconds + " s; stderr:\n" + Files.readString(err));
            }
            return new Result(process.exitValue(), Files.readString(out, StandardCharsets.UTF_8), Files.readString(err, StandardCharsets.UTF_8));
        }
    }

    static Started start(Path logDir, String name, Map<String, String> env, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(ROOT.resolve("bin/spark-lora").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ROOT.toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("SPARK_"));
        pb.environment().put("SPARK_LORA_CLASSPATH", classPath());
        pb.environment().put("SPARK_LORA_JAVA_OPTS", "-Xmx2g");
        pb.environment().putAll(env);
        Files.createDirectories(logDir);
        Path out = logDir.resolve(name + ".out"), err = logDir.resolve(name + ".err");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        return new Started(pb.start(), out, err);
    }

    static Result run(Path logDir, String name, long timeoutSeconds, String... args) throws Exception {
        return start(logDir, name, Map.of(), args).await(timeoutSeconds);
    }

    /** Lines a Log4j pattern "%d %p %c{1}: %m" prints at INFO (or DEBUG/TRACE), and SLF4J's own complaints. */
    /**
     * stderr without the one line the JVM prints at start when {@code --add-modules=jdk.incubator.vector} (conf/jvm.options,
     * for the engine's Vector API kernels) resolves the incubating module.
     */
    static String withoutVectorApiNotice(String stderr) {
        return stderr.replaceFirst("^WARNING: Using incubator modules: jdk\\.incubator\\.vector\\R", "");
    }

    static List<String> infoOrSlf4jLines(String stderr) {
        return stderr.lines().filter(l -> l.matches("^\\S+ \\S+ (INFO|DEBUG|TRACE) .*") || l.startsWith("SLF4J")).toList();
    }
}
