package io.sparklora.ml;

import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.Params;
import org.apache.spark.ml.param.StringArrayParam;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.util.Arrays;

/**
 * The params {@link LoraEstimator} and {@link LoraModel} share (Spark ML style: each is a public no-argument
 * method returning its {@link Param}, with a {@code getX()} getter; setters are on the classes). See each
 * param's {@code doc()} for its meaning; defaults: inputCol "text", labelCol "label", outputCol
 * "prediction" with labels else "continuation", probabilityCol "probability", adapter
 * "type=lora,r=8,alpha=16", rounds 30, batchSize 4, lr 3e-3, seqLen 128, partitions 2, warmup 0,
 * validationFraction 0.1, seed 42, maxNewTokens 20, labels none, basePath none (required).
 */
public interface LoraParams extends Params {
    /** This instance's param objects. */
    LoraParamSet loraParams();

    default Param<String> inputCol() { return loraParams().inputCol; }
    default Param<String> promptCol() { return loraParams().promptCol; }
    default Param<String> responseCol() { return loraParams().responseCol; }
    default Param<String> labelCol() { return loraParams().labelCol; }
    default Param<String> outputCol() { return loraParams().outputCol; }
    default Param<String> probabilityCol() { return loraParams().probabilityCol; }
    default Param<String> basePath() { return loraParams().basePath; }
    default Param<String> tokenizerPath() { return loraParams().tokenizerPath; }
    default Param<String> adapter() { return loraParams().adapter; }
    default Param<String> workDir() { return loraParams().workDir; }
    default StringArrayParam labels() { return loraParams().labels; }
    default IntParam rounds() { return loraParams().rounds; }
    default IntParam batchSize() { return loraParams().batchSize; }
    default IntParam seqLen() { return loraParams().seqLen; }
    default IntParam partitions() { return loraParams().partitions; }
    default IntParam warmup() { return loraParams().warmup; }
    default IntParam maxNewTokens() { return loraParams().maxNewTokens; }
    default DoubleParam lr() { return loraParams().lr; }
    default DoubleParam validationFraction() { return loraParams().validationFraction; }
    default LongParam seed() { return loraParams().seed; }
    default BooleanParam verbose() { return loraParams().verbose; }

    default String getInputCol() { return getOrDefault(inputCol()); }
    default String getPromptCol() { return getOrDefault(promptCol()); }
    default String getResponseCol() { return getOrDefault(responseCol()); }
    default String getLabelCol() { return getOrDefault(labelCol()); }
    /** The output column: as set, else "prediction" when labels are set, else "continuation". */
    default String getOutputCol() {
        String o = getOrDefault(outputCol());
        return !o.isEmpty() ? o : getLabels().length > 0 ? "prediction" : "continuation";
    }
    default String getProbabilityCol() { return getOrDefault(probabilityCol()); }
    /** @throws IllegalArgumentException when basePath was never set */
    default String getBasePath() {
        if (!isDefined(basePath())) throw new IllegalArgumentException(uid() + ": basePath (a Hugging Face model directory) is not set");
        return getOrDefault(basePath());
    }
    /** The tokenizer.json URI: tokenizerPath as set (a directory gets /tokenizer.json), else basePath/tokenizer.json. */
    default String getTokenizerPath() {
        String t = getOrDefault(tokenizerPath());
        if (t.isEmpty()) return io.sparklora.storage.HadoopFiles.resolve(getBasePath(), "tokenizer.json");
        return t.endsWith(".json") ? io.sparklora.storage.HadoopFiles.path(t).toString() : io.sparklora.storage.HadoopFiles.resolve(t, "tokenizer.json");
    }
    default String getAdapter() { return getOrDefault(adapter()); }
    default String getWorkDir() { return getOrDefault(workDir()); }
    default String[] getLabels() { return getOrDefault(labels()); }
    default int getRounds() { return (Integer) getOrDefault(rounds()); }
    default int getBatchSize() { return (Integer) getOrDefault(batchSize()); }
    default int getSeqLen() { return (Integer) getOrDefault(seqLen()); }
    default int getPartitions() { return (Integer) getOrDefault(partitions()); }
    default int getWarmup() { return (Integer) getOrDefault(warmup()); }
    default int getMaxNewTokens() { return (Integer) getOrDefault(maxNewTokens()); }
    default double getLr() { return (Double) getOrDefault(lr()); }
    default double getValidationFraction() { return (Double) getOrDefault(validationFraction()); }
    default long getSeed() { return (Long) getOrDefault(seed()); }
    default boolean getVerbose() { return (Boolean) getOrDefault(verbose()); }

    /** The column transform reads: promptCol when set, else inputCol. */
    default String transformInputCol() { return getPromptCol().isEmpty() ? getInputCol() : getPromptCol(); }

    /** Checks that {@code column} exists in {@code schema} and is a string column; the message names both. */
    static void requireStringColumn(StructType schema, String column, String role, String owner) {
        if (!Arrays.asList(schema.fieldNames()).contains(column)) {
            throw new IllegalArgumentException(owner + ": " + role + " column '" + column + "' does not exist; the columns are "
                    + Arrays.toString(schema.fieldNames()));
        }
        DataType t = schema.apply(column).dataType();
        if (!t.equals(DataTypes.StringType)) {
            throw new IllegalArgumentException(owner + ": " + role + " column '" + column + "' must be of type string but is "
                    + t.simpleString());
        }
    }

    /** The schema transform produces: {@code schema} plus the output column (and the probability column with labels). */
    default StructType outputSchema(StructType schema, String owner) {
        requireStringColumn(schema, transformInputCol(), getPromptCol().isEmpty() ? "inputCol" : "promptCol", owner);
        StructType out = schema;
        boolean labelled = getLabels().length > 0;
        for (String c : labelled && !getProbabilityCol().isEmpty() ? new String[]{getOutputCol(), getProbabilityCol()} : new String[]{getOutputCol()}) {
            if (Arrays.asList(schema.fieldNames()).contains(c)) {
                throw new IllegalArgumentException(owner + ": output column '" + c + "' already exists; set outputCol/probabilityCol to another name");
            }
        }
        out = out.add(new StructField(getOutputCol(), DataTypes.StringType, true, org.apache.spark.sql.types.Metadata.empty()));
        if (labelled && !getProbabilityCol().isEmpty()) {
            out = out.add(new StructField(getProbabilityCol(), DataTypes.DoubleType, true, org.apache.spark.sql.types.Metadata.empty()));
        }
        return out;
    }
}
