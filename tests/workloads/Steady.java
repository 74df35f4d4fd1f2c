import java.util.zip.CRC32;
import java.util.zip.Deflater;

/**
 * Prints a fixed text around some zlib work and a pause, then exits with a chosen code: a run
 * with the agent must print exactly what a run without it prints. Needs no permission beyond
 * exitVM, so it also runs under a restrictive SecurityManager policy. Args: pause ms, exit code.
 */
public class Steady {
    public static void main(String[] args) throws Exception {
        long pauseMs = args.length > 0 ? Long.parseLong(args[0]) : 500;
        int code = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        System.out.println("start");
        byte[] src = new byte[256 * 1024];
        for (int i = 0; i < src.length; i++) {
            src[i] = (byte) (i * 31 % 251);
        }
        byte[] out = new byte[src.length + 1024];
        Deflater d = new Deflater();
        d.setInput(src);
        d.finish();
        int n = d.deflate(out);
        d.end();
        CRC32 crc = new CRC32();
        crc.update(out, 0, n);
        System.out.println("deflated " + n + " crc " + Long.toHexString(crc.getValue()));
        Thread.sleep(pauseMs);
        System.out.println("end");
        System.out.flush();
        if (code != 0) {
            System.exit(code);
        }
    }
}
