import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import scala.tools.nsc.Settings;
import scala.tools.nsc.interpreter.IMain;
import scala.tools.nsc.interpreter.Results;

import java.io.File;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs the {@code %spark} paragraphs of a Zeppelin note (.zpln, Zeppelin's JSON note format) in order,
 * in one Scala 2.12 interpreter ({@code scala.tools.nsc.interpreter.IMain}, the one Zeppelin's Spark
 * interpreter uses for Scala 2.12), with {@code spark} (SparkSession) and {@code sc} (SparkContext)
 * bound as Zeppelin binds them; stops at the first paragraph that does not compile or throws (exit 1).
 *
 * <pre>java -cp scala-compiler-2.12.18.jar:jobs/target/spark-lora-jobs.jar:$(cat jobs/target/local-classpath.txt) \
 *      $(bin/jvm-flags.sh) notebooks/tools/ZeppelinNoteRunner.java notebooks/quick-start.zpln</pre>
 *
 * Spark runs on {@code local[2]} with the UI off; REPL classes are written to a temporary directory
 * that Spark serves to executors ({@code spark.repl.class.outputDir}), as in Zeppelin. Paragraphs of other
 * interpreters ({@code %md}, {@code %sh}, ...) are skipped and listed. What this does NOT check:
 * Zeppelin's server and UI, its display system ({@code z.show}, {@code %html} output; {@code z} is not
 * bound), its dependency loader, its paragraph-by-paragraph line splitting and progress bars.
 */
public final class ZeppelinNoteRunner {

    private ZeppelinNoteRunner() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: ZeppelinNoteRunner NOTE.zpln");
            System.exit(2);
        }
        Path note = Path.of(args[0]);
        JsonNode root = new ObjectMapper().readTree(note.toFile());
        JsonNode paragraphs = root.path("paragraphs");
        if (!paragraphs.isArray() || paragraphs.isEmpty()) {
            System.err.println(note + ": no \"paragraphs\" array: not a Zeppelin note");
            System.exit(2);
        }
        Path outDir = Files.createTempDirectory("zeppelin-repl-classes");
        SparkConf conf = new SparkConf()
                .setMaster("local[2]")
                .setAppName("zeppelin-note " + note.getFileName())
                .set("spark.ui.enabled", "false")
                .set("spark.repl.class.outputDir", outDir.toString());
        SparkSession spark = SparkSession.builder().config(conf).getOrCreate();

        Settings settings = new Settings();
        List<String> options = List.of("-Yrepl-class-based", "-Yrepl-outdir", outDir.toString(),
                "-classpath", System.getProperty("java.class.path"));
        settings.processArguments(scala.collection.JavaConverters.asScalaBuffer(options).toList(), true);
        PrintWriter out = new PrintWriter(System.out, true);
        IMain repl = new IMain(settings, out);
        scala.collection.immutable.List<String> transientVal =
                scala.collection.JavaConverters.asScalaBuffer(List.of("@transient")).toList();
        check(repl.bind("spark", SparkSession.class.getName(), spark, transientVal), "binding spark");
        check(repl.bind("sc", org.apache.spark.SparkContext.class.getName(), spark.sparkContext(), transientVal), "binding sc");

        int ran = 0;
        List<String> skipped = new ArrayList<>();
        int index = 0;
        for (JsonNode p : paragraphs) {
            index++;
            String text = p.path("text").asText("");
            String title = p.path("title").asText("paragraph " + index);
            String[] lines = text.stripLeading().split("\n", 2);
            String magic = lines[0].trim();
            if (!magic.equals("%spark") && !magic.equals("%spark.spark")) {
                if (!text.isBlank()) skipped.add(title + " (" + magic.split("\\s", 2)[0] + ")");
                continue;
            }
            String body = lines.length > 1 ? lines[1] : "";
            System.out.println("=== [" + index + "] " + title);
            Results.Result r = repl.interpret(body);
            if (r != Results.Success$.MODULE$) {
                System.err.println(note + ": paragraph " + index + " (" + title + ") "
                        + (r == Results.Incomplete$.MODULE$ ? "is incomplete" : "failed"));
                spark.stop();
                System.exit(1);
            }
            ran++;
        }
        spark.stop();
        System.out.println("=== " + note + ": " + ran + " %spark paragraph" + (ran == 1 ? "" : "s") + " ran"
                + (skipped.isEmpty() ? "" : "; skipped " + skipped));
        deleteQuietly(outDir.toFile());
        System.exit(ran == 0 ? 1 : 0);
    }

    private static void check(Results.Result r, String what) {
        if (r != Results.Success$.MODULE$) throw new IllegalStateException(what + " failed");
    }

    private static void deleteQuietly(File f) {
        File[] children = f.listFiles();
        if (children != null) for (File c : children) deleteQuietly(c);
        f.delete();
    }
}
