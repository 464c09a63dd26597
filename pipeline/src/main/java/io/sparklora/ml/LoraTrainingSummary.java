package io.sparklora.ml;

import java.io.Serializable;

/**
 * What {@link LoraEstimator#fit} measured.
 *
 * @param trainLoss             mean training loss of each round (token cross-entropy, nats), {@code rounds} values
 * @param baseValidationLoss    mean token loss of the base model on the held-out rows (NaN when none were held out)
 * @param adaptedValidationLoss the same for the adapted model
 * @param validationTokens      target tokens in the held-out rows
 * @param trainableParameters   values in the adapter's tensors
 */
public record LoraTrainingSummary(double[] trainLoss, double baseValidationLoss, double adaptedValidationLoss, long validationTokens,
                                  long trainableParameters) implements Serializable {
    /** An empty summary, for a model loaded from disk whose params.json has none. */
    static LoraTrainingSummary none() {
        return new LoraTrainingSummary(new double[0], Double.NaN, Double.NaN, 0, 0);
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "rounds %d, final train loss %.4f, validation loss %.4f (base %.4f) over %,d tokens, %,d trainable",
                trainLoss.length, trainLoss.length == 0 ? Double.NaN : trainLoss[trainLoss.length - 1], adaptedValidationLoss, baseValidationLoss,
                validationTokens, trainableParameters);
    }
}
