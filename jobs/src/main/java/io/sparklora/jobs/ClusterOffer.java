package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * What a Spark standalone master offers (its web UI's {@code /json/}: cores and memory of each alive worker)
 * against what an application asks for ({@code spark.executor.cores}, {@code spark.executor.memory},
 * {@code spark.task.cpus}). Spark itself never fails an application that no worker can host: it waits for
 * resources forever, printing "Initial job has not accepted any resources". spark-lora fails at once
 * instead, with a message naming the cluster's offer, the application's ask and settings that would fit.
 * It does not resize executors: the sizes are the operator's decision (docs/CLUSTER.md).
 *
 * <p>Checked twice: by {@code jobs/scripts/submit-standalone.sh} before spark-submit (this class's
 * {@link #main}, which needs only the shaded jar), and by the driver ({@link #requireFit}) for submissions
 * that bypass the script. The master's web UI is {@code spark.lora.masterWebUi}, by default port 8080 of
 * the master's host. When it cannot be read the check is skipped with a warning, never failed.
 */
final class ClusterOffer {
    static final String WEB_UI_KEY = "spark.lora.masterWebUi";
    /** {@link #main}'s exit codes: the application fits, it does not, the offer could not be read. */
    static final int FITS = 0, MISFIT = 3, UNKNOWN = 4;
    private static final ObjectMapper JSON = new ObjectMapper();

    private ClusterOffer() {}

    /** One worker of the master's /json/: its id, total cores, total memory in MiB, state (ALIVE, DEAD, ...). */
    record Worker(String id, int cores, long memoryMiB, String state) {}

    /**
     * An application's executor size: {@code executorCores} 0 means unset (standalone then gives an executor
     * every core of its worker), memory in MiB (Spark's default 1g), cores per task.
     */
    record Ask(int executorCores, long executorMemoryMiB, int taskCpus, String executorMemoryText) {
        static Ask of(Map<String, String> conf) {
            String mem = conf.getOrDefault("spark.executor.memory", "1g").strip();
            return new Ask(Integer.parseInt(conf.getOrDefault("spark.executor.cores", "0").strip()), mib(mem),
                    Integer.parseInt(conf.getOrDefault("spark.task.cpus", "1").strip()), mem);
        }
    }

    /** A Spark memory size ("16g", "512m", "2048" = MiB) in MiB. */
    static long mib(String size) {
        String s = size.strip().toLowerCase(Locale.ROOT);
        String digits = s.replaceAll("[a-z]+$", "");
        String unit = s.substring(digits.length());
        long n;
        try {
            n = Long.parseLong(digits);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("spark.executor.memory: not a size: '" + size + "'");
        }
        return switch (unit) {
            case "k", "kb" -> Math.max(1, n / 1024);
            case "m", "mb", "" -> n;
            case "g", "gb" -> n * 1024;
            case "t", "tb" -> n * 1024 * 1024;
            default -> throw new IllegalArgumentException("spark.executor.memory: unknown unit in '" + size + "'");
        };
    }

    /** The master's web UI for a {@code spark://host:port[,host2:port2]} URL: port 8080 of the first host. */
    static String defaultWebUi(String master) {
        String hostPort = master.substring("spark://".length()).split(",")[0];
        int colon = hostPort.lastIndexOf(':');
        return "http://" + (colon > 0 ? hostPort.substring(0, colon) : hostPort) + ":8080";
    }

    /** The workers the master at {@code webUi} lists (all states), read from {@code <webUi>/json/}. */
    static List<Worker> fetch(String webUi, int timeoutMillis) throws IOException {
        HttpURLConnection c = (HttpURLConnection) URI.create(webUi.replaceAll("/+$", "") + "/json/").toURL().openConnection();
        c.setConnectTimeout(timeoutMillis);
        c.setReadTimeout(timeoutMillis);
        try (InputStream in = c.getInputStream()) {
            return workers(JSON.readTree(in));
        } finally {
            c.disconnect();
        }
    }

    static List<Worker> workers(JsonNode masterJson) {
        List<Worker> out = new ArrayList<>();
        for (JsonNode w : masterJson.path("workers")) {
            out.add(new Worker(w.path("id").asText(), w.path("cores").asInt(), w.path("memory").asLong(), w.path("state").asText()));
        }
        return out;
    }

    /** Null when some alive worker can host one executor of {@code ask}; else why not, with settings that would fit. */
    static String misfit(String master, List<Worker> workers, Ask ask) {
        List<Worker> alive = workers.stream().filter(w -> w.state().equals("ALIVE")).toList();
        for (Worker w : alive) {
            int cores = ask.executorCores() > 0 ? ask.executorCores() : w.cores();
            if (cores <= w.cores() && ask.taskCpus() <= cores && ask.executorMemoryMiB() <= w.memoryMiB()) return null;
        }
        String asks = String.format(Locale.ROOT, "executors of spark.executor.cores=%s, spark.task.cpus=%d and spark.executor.memory=%s (%d MiB)",
                ask.executorCores() > 0 ? String.valueOf(ask.executorCores()) : "(all of a worker's)", ask.taskCpus(),
                ask.executorMemoryText(), ask.executorMemoryMiB());
        if (alive.isEmpty()) {
            return "the Spark master " + master + " has no alive worker; the application asks for " + asks
                    + " and would wait for resources forever. Start a worker (or check the master's web UI) and submit again.";
        }
        Worker biggest = alive.stream().max((a, b) -> a.cores() != b.cores() ? Integer.compare(a.cores(), b.cores())
                : Long.compare(a.memoryMiB(), b.memoryMiB())).orElseThrow();
        int fitCores = Math.min(biggest.cores(), Math.max(1, ask.executorCores() > 0 ? ask.executorCores() : ask.taskCpus()));
        fitCores = Math.min(fitCores, biggest.cores());
        long fitMem = Math.min(ask.executorMemoryMiB(), Math.max(512, biggest.memoryMiB() / 2));
        return String.format(Locale.ROOT, "the application cannot start on %s: it asks for %s, but the largest alive worker offers %d cores "
                        + "and %d MiB (%d alive worker%s); Spark would wait for resources forever. Ask for executors that fit, e.g. "
                        + "SPARK_LORA_SUBMIT_ARGS=\"--conf spark.executor.cores=%d --conf spark.task.cpus=%d --conf spark.executorEnv.OMP_NUM_THREADS=%d "
                        + "--conf spark.executor.memory=%dm\" (ND4J's off-heap memory grows to the heap size: keep spark.executor.memory "
                        + "at about half a worker's memory; docs/CLUSTER.md)",
                master, asks, biggest.cores(), biggest.memoryMiB(), alive.size(), alive.size() == 1 ? "" : "s",
                fitCores, fitCores, fitCores, fitMem);
    }

    /**
     * The driver's check: on a {@code spark://} master, fails with {@link #misfit}'s message when no alive
     * worker can host one executor. Other masters, and a web UI that cannot be read (a warning), pass.
     */
    static void requireFit(org.apache.spark.SparkConf conf) {
        String master = conf.get("spark.master", "");
        if (!master.startsWith("spark://")) return;
        String ui = conf.get(WEB_UI_KEY, defaultWebUi(master));
        List<Worker> workers;
        try {
            workers = fetch(ui, 5000);
        } catch (IOException | RuntimeException e) {
            System.err.println("spark-lora: could not read the master's offer from " + ui + "/json/ (" + e + "); not checking that executors fit (set "
                    + WEB_UI_KEY + ")");
            return;
        }
        Map<String, String> c = new LinkedHashMap<>();
        for (var t : conf.getAll()) c.put(t._1(), t._2());
        String why = misfit(master, workers, Ask.of(c));
        if (why != null) throw new IllegalStateException(why);
    }

    /**
     * {@code ClusterOffer WEB_UI MASTER [spark-submit options]}: the submit script's check. Reads
     * {@code --properties-file}, then {@code --conf k=v}, {@code --executor-cores} and {@code --executor-memory}
     * (later wins, as in spark-submit). Exit 0: fits; 3: does not (message on stderr); 4: offer unreadable.
     */
    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: ClusterOffer WEB_UI spark://MASTER [--properties-file F] [--conf k=v] [--executor-cores N] [--executor-memory X] ...");
            System.exit(2);
        }
        try {
            Map<String, String> conf = submitConf(List.of(args).subList(2, args.length));
            List<Worker> workers;
            try {
                workers = fetch(args[0], 5000);
            } catch (IOException e) {
                System.err.println("spark-lora: could not read the master's offer from " + args[0] + "/json/ (" + e + ")");
                System.exit(UNKNOWN);
                return;
            }
            String why = misfit(args[1], workers, Ask.of(conf));
            if (why != null) {
                System.err.println("spark-lora: " + why);
                System.exit(MISFIT);
            }
            System.exit(FITS);
        } catch (IOException | IllegalArgumentException e) {
            System.err.println("spark-lora: " + e.getMessage());
            System.exit(2);
        }
    }

    /** The Spark settings a spark-submit command line amounts to (properties file first, then the options). */
    static Map<String, String> submitConf(List<String> argv) throws IOException {
        Map<String, String> conf = new LinkedHashMap<>();
        for (int i = 0; i + 1 < argv.size(); i++) {
            if (argv.get(i).equals("--properties-file")) {
                Properties p = new Properties();
                try (Reader r = Files.newBufferedReader(Path.of(argv.get(i + 1)), StandardCharsets.UTF_8)) {
                    p.load(r);
                }
                p.stringPropertyNames().forEach(k -> conf.put(k, p.getProperty(k).strip()));
            }
        }
        for (int i = 0; i + 1 < argv.size(); i++) {
            String a = argv.get(i), v = argv.get(i + 1);
            switch (a) {
                case "--conf" -> {
                    int eq = v.indexOf('=');
                    if (eq > 0) conf.put(v.substring(0, eq), v.substring(eq + 1));
                }
                case "--executor-cores" -> conf.put("spark.executor.cores", v);
                case "--executor-memory" -> conf.put("spark.executor.memory", v);
                default -> { }
            }
        }
        return conf;
    }
}
