package io.sparklora.runner;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A pipeline run as one YAML file ({@code conf/demo.yaml} is the annotated example). Every key has a
 * default except the adaptation dataset; an unknown key anywhere is an error that names it, so a typo
 * never silently falls back to a default. Relative paths resolve against the working directory.
 */
public final class PipelineConfig {
    public String name = "run";
    /** Where the run writes (any Hadoop URI); default {@code runs/<name>}. */
    public String output;
    public SparkSection spark = new SparkSection();
    public DatasetsSection datasets = new DatasetsSection();
    public TokenizerSection tokenizer = new TokenizerSection();
    public DataSection data = new DataSection();
    public BaseSection base = new BaseSection();
    public AdapterSection adapter = new AdapterSection();
    public TrainSection train = new TrainSection();
    public LoraDropSection loraDrop = new LoraDropSection();
    public FullFinetuneSection fullFinetune = new FullFinetuneSection();
    public EvaluateSection evaluate = new EvaluateSection();

    public static final class SparkSection {
        /** Used when the job was not started by spark-submit (which sets the master itself). */
        public String master = "local[*]";
        public Map<String, String> conf = new LinkedHashMap<>();
    }

    public static final class DatasetsSection {
        /** Dataset manifest of the corpus to adapt to (required). */
        public String adapt;
        /** Dataset manifest to pretrain a small base on, when {@code base.path} is not given. */
        public String pretrain;
    }

    public static final class TokenizerSection {
        /**
         * A tokenizer.json (or a model directory holding one); absent: the base model's own
         * ({@code base.path}/tokenizer.json), or, when the run pretrains its base, a byte-level BPE learned from the datasets.
         */
        public String path;
        public int vocabSize = 2048;
    }

    public static final class DataSection {
        public int seqLen = 128;
        public double validationFraction = 0.1;
        public int partitions = 2;
        public long maxLineBytes = 4L << 20;
        public long seed = 42;
    }

    public static final class BaseSection {
        /** A Hugging Face model directory (any Hadoop URI); absent: pretrain one (see {@link PretrainSection}). */
        public String path;
        public PretrainSection pretrain = new PretrainSection();
    }

    public static final class PretrainSection {
        public int dModel = 128;
        public int layers = 2;
        public int heads = 4;
        public int steps = 150;
        public int batchSize = 8;
        public double lr = 3e-3;
    }

    public static final class AdapterSection {
        public String type = "lora";
        public int r = 8;
        public double alpha = 16;
        public double dropout = 0.0;
        public List<String> targets = new ArrayList<>();
        public boolean rslora = false;
        public String bias = "none";
        public String init = "kaiming";
    }

    public static final class TrainSection {
        public int rounds = 60;
        public int localSteps = 1;
        public String sync = "gradients";
        public boolean averageOptimizerState = true;
        public int batchSize = 4;
        public int gradAccumulation = 1;
        public double lr = 3e-3;
        public double weightDecay = 0.0;
        public int warmup = 5;
        public String schedule = "cosine";
        public double maxGradNorm = 1.0;
        public long seed = 42;
        public int checkpointEvery = 10;
    }

    public static final class LoraDropSection {
        public boolean enabled = true;
        public double sampleFraction = 0.3;
        public int warmupRounds = 10;
        public double threshold = 0.9;
        /** Rounds to train the reduced set; 0 means as many as {@code train.rounds}. */
        public int rounds = 0;
    }

    public static final class FullFinetuneSection {
        /** A one-process full fine-tuning baseline for the report (every weight trains; the base is small). */
        public boolean enabled = false;
        public int steps = 60;
        public double lr = 1e-3;
        public int batchSize = 8;
    }

    public static final class EvaluateSection {
        public int batchSize = 8;
        public int samples = 3;
        public int sampleTokens = 40;
        public int samplePromptTokens = 24;
    }

    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory())
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .setVisibility(com.fasterxml.jackson.annotation.PropertyAccessor.FIELD, com.fasterxml.jackson.annotation.JsonAutoDetect.Visibility.PUBLIC_ONLY);

    public static PipelineConfig read(Configuration conf, String uri) throws IOException {
        if (!HadoopFiles.exists(conf, uri)) throw new IllegalArgumentException("pipeline config " + uri + " not found");
        return parse(HadoopFiles.readString(conf, uri), uri);
    }

    public static PipelineConfig parse(String yaml, String where) {
        PipelineConfig c;
        try {
            c = YAML.readValue(yaml, PipelineConfig.class);
        } catch (UnrecognizedPropertyException e) {
            String path = e.getPath().stream().map(r -> r.getFieldName() == null ? "[" + r.getIndex() + "]" : r.getFieldName())
                    .collect(Collectors.joining("."));
            String known = e.getKnownPropertyIds() == null ? "" : e.getKnownPropertyIds().stream().map(Object::toString).sorted()
                    .collect(Collectors.joining(", "));
            throw new IllegalArgumentException(where + ": unknown key '" + path + "' (line " + e.getLocation().getLineNr()
                    + "); known keys here: " + known);
        } catch (MismatchedInputException e) {
            String path = e.getPath().stream().map(r -> r.getFieldName() == null ? "[" + r.getIndex() + "]" : r.getFieldName())
                    .collect(Collectors.joining("."));
            throw new IllegalArgumentException(where + ": bad value for '" + path + "' (line " + e.getLocation().getLineNr() + "): "
                    + e.getOriginalMessage().split("\n")[0]);
        } catch (IOException e) {
            throw new IllegalArgumentException(where + ": not valid YAML: " + e.getMessage().split("\n")[0]);
        }
        if (c == null) throw new IllegalArgumentException(where + ": empty pipeline config");
        c.validate(where);
        return c;
    }

    private void validate(String where) {
        if (datasets.adapt == null) throw new IllegalArgumentException(where + ": datasets.adapt (the dataset manifest to adapt to) is required");
        if (base.path == null && datasets.pretrain == null) {
            throw new IllegalArgumentException(where + ": give base.path (a Hugging Face model directory) or datasets.pretrain (to pretrain a small base)");
        }
        if (!name.matches("[A-Za-z0-9._-]+")) throw new IllegalArgumentException(where + ": name '" + name + "' may use only letters, digits, '.', '_' and '-'");
        if (output == null) output = "runs/" + name;
    }
}
