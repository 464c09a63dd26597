package io.sparklora.ml;

import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamPair;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.param.Params;
import org.apache.spark.ml.param.StringArrayParam;

import java.io.Serializable;
import java.util.List;

/**
 * The {@link Param} objects of one {@link LoraEstimator} or {@link LoraModel} (Spark params belong to one
 * owner by uid, so each instance makes its own set), with their defaults. {@link LoraParams} exposes them.
 */
public final class LoraParamSet implements Serializable {
    private static final long serialVersionUID = 1L;

    final Param<String> inputCol, promptCol, responseCol, labelCol, outputCol, probabilityCol;
    final Param<String> basePath, tokenizerPath, adapter, workDir;
    final StringArrayParam labels;
    final IntParam rounds, batchSize, seqLen, partitions, warmup, maxNewTokens;
    final DoubleParam lr, validationFraction;
    final LongParam seed;
    final BooleanParam verbose;

    LoraParamSet(Params owner) {
        inputCol = new Param<>(owner, "inputCol", "column of the text to train on and to continue or label (string)");
        promptCol = new Param<>(owner, "promptCol", "optional: column of prompts (string); with responseCol, fit trains on prompt/response "
                + "pairs (only the response is a target) and transform continues the prompt; empty: use inputCol");
        responseCol = new Param<>(owner, "responseCol", "optional: column of responses (string), used by fit with promptCol");
        labelCol = new Param<>(owner, "labelCol", "column of each row's label (one of labels), used by fit when labels are set");
        outputCol = new Param<>(owner, "outputCol", "column transform adds: the predicted label when labels are set, else the continuation; "
                + "empty: 'prediction' or 'continuation'");
        probabilityCol = new Param<>(owner, "probabilityCol", "column transform adds when labels are set: the predicted label's probability "
                + "(softmax over the labels' log-likelihoods); empty: none");
        basePath = new Param<>(owner, "basePath", "the base model: a Hugging Face model directory (config.json, *.safetensors), any Hadoop URI");
        tokenizerPath = new Param<>(owner, "tokenizerPath", "tokenizer.json (or a directory holding one); empty: basePath/tokenizer.json");
        adapter = new Param<>(owner, "adapter", "the adapter, as the CLI's --adapter spec: type=lora,r=8,alpha=16,targets=c_attn+c_proj "
                + "(docs/VARIANTS.md lists the types and their settings; targets default to the architecture's)");
        workDir = new Param<>(owner, "workDir", "directory (any Hadoop URI, shared by all executors) under which fit writes its temporary "
                + "dataset and shards, removed afterwards; empty: java.io.tmpdir in local mode, else /tmp on the default file system");
        labels = new StringArrayParam(owner, "labels", "the label set; non-empty: fit trains 'text + \\nLabel: + label' and transform predicts a label");
        rounds = new IntParam(owner, "rounds", "synchronous training rounds (one optimizer step each)", ParamValidators.gtEq(1));
        batchSize = new IntParam(owner, "batchSize", "sequences per task per round (and per evaluation batch; for a model's transform with adapterCol, rows per mixed-adapter pass)", ParamValidators.gtEq(1));
        seqLen = new IntParam(owner, "seqLen", "tokens per training sequence", ParamValidators.gtEq(2));
        partitions = new IntParam(owner, "partitions", "shards of the training data = tasks per round", ParamValidators.inRange(1, 99_999));
        warmup = new IntParam(owner, "warmup", "rounds of linear learning-rate warm-up before the cosine decay", ParamValidators.gtEq(0));
        maxNewTokens = new IntParam(owner, "maxNewTokens", "tokens transform generates per row (greedy; stops early at end-of-text)", ParamValidators.gtEq(0));
        lr = new DoubleParam(owner, "lr", "AdamW learning rate", ParamValidators.gt(0));
        validationFraction = new DoubleParam(owner, "validationFraction", "share of rows fit holds out to measure the validation loss",
                ParamValidators.inRange(0, 1, true, false));
        seed = new LongParam(owner, "seed", "seed of the train/validation split, adapter initialisation and batch order");
        verbose = new BooleanParam(owner, "verbose", "print fit's progress lines to standard output");
    }

    /** Every default, as (param, value) pairs. */
    List<ParamPair<?>> defaults() {
        return List.of(inputCol.w("text"), promptCol.w(""), responseCol.w(""), labelCol.w("label"), outputCol.w(""),
                probabilityCol.w("probability"), tokenizerPath.w(""), adapter.w("type=lora,r=8,alpha=16"), workDir.w(""),
                labels.w(new String[0]), rounds.w(30), batchSize.w(4), seqLen.w(128), partitions.w(2), warmup.w(0),
                maxNewTokens.w(20), lr.w(3e-3), validationFraction.w(0.1), seed.w(42L), verbose.w(false));
    }
}
