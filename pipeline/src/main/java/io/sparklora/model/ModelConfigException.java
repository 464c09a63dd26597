package io.sparklora.model;

/** A model configuration or checkpoint that does not describe a model we can build; the message says where. */
public class ModelConfigException extends RuntimeException {
    public ModelConfigException(String message) { super(message); }
    public ModelConfigException(String message, Throwable cause) { super(message, cause); }
}
