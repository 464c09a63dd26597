package io.sparklora.checkpoint;

import java.nio.file.Path;

/**
 * A checkpoint file could not be read or written: malformed, truncated, unsupported or refused.
 * Unchecked because callers can rarely recover; the message always names the file, and the tensor
 * when one is involved, so the user can find the culprit without a debugger.
 */
public class CheckpointException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }

    /** "FILE: problem". */
    public static CheckpointException inFile(Path file, String problem) {
        return new CheckpointException(file + ": " + problem);
    }

    public static CheckpointException inFile(Path file, String problem, Throwable cause) {
        return new CheckpointException(file + ": " + problem, cause);
    }

    /** "FILE: tensor 'NAME': problem". */
    public static CheckpointException inTensor(Path file, String tensor, String problem) {
        return new CheckpointException(file + ": tensor '" + tensor + "': " + problem);
    }

    public static CheckpointException inTensor(Path file, String tensor, String problem, Throwable cause) {
        return new CheckpointException(file + ": tensor '" + tensor + "': " + problem, cause);
    }
}
