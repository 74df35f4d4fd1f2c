/** Prints a fixed text and exits with a chosen code: the agent must change neither. */
public class Hello {
    public static void main(String[] args) {
        int code = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        for (int i = 0; i < 3; i++) {
            System.out.println("hello " + i);
        }
        System.out.flush();
        if (code != 0) {
            System.exit(code);
        }
    }
}
